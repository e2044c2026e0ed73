"""Screenshots of the dashboard for a before/after comparison an analyst can look at.

    .venv/bin/python bench/screenshots.py OUTDIR [--store DIR] [--days 90 --seed 7 --end 2026-11-30] [--code DIR]

Plays the demo (`postwatch demo --days --seed --end`) into a fresh temporary folder, unless
--store names a folder where it was played already (postwatch.toml, var/postwatch.db and
var/demo-login), starts `postwatch serve --role web` there on a free loopback port, logs in
as the demo user with headless Chromium (Selenium, Debian's /usr/bin/chromium and
/usr/bin/chromedriver) and saves full-page PNGs, 1400 px wide, of Overview, Bounces,
Reputation, Compare (sending IP 192.0.2.10 vs 192.0.2.11) and DMARC over the demo's range
into OUTDIR: overview.png, bounces.png, reputation.png, compare-ip.png, dmarc.png.

--code DIR (default: this repository) is the source tree that runs: `python -m postwatch.cli`
runs with PYTHONPATH=DIR (and PYTHONSAFEPATH unset) in this virtualenv, so a git worktree of
an older commit can be shot too:

    git worktree add /tmp/pw-before 41959c8
    .venv/bin/python bench/screenshots.py docs/screenshots/before --code /tmp/pw-before

Exits 2 when chromium, chromedriver or selenium is missing, or when DIR's code is not the
code that would run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars")
WIDTH = 1400
# the same test as tests/test_e2e_browser.py: nothing loading, every graph drawn
PLOTTED = """return (function (root) {
    if (!root || root.querySelector('[data-dash-is-loading="true"]')) return false;
    const graphs = Array.from(root.querySelectorAll('.dash-graph'));
    return graphs.every(g => g.querySelector('.main-svg'));
})(document.getElementById(arguments[0]));"""
# Compare takes its groups from the URL (compare.layout reads by, a and b); both drawn = two traces
COMPARED = """const g = document.querySelector('#cmp-figure .js-plotly-plot');
return !!(g && g.data && g.data.length === 2);"""
# the window height that shows the whole page: its content's height (measured in the 1000 px
# window, as the body is at least as tall as the window) plus the window's own toolbars
FULL_HEIGHT = """return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)
    + window.outerHeight - window.innerHeight;"""
# (file, path, page id, extra query)
SHOTS = (("overview", "/", "overview", ""), ("bounces", "/bounces", "bounces", ""),
         ("reputation", "/reputation", "reputation", ""),
         ("compare-ip", "/compare", "compare", "&by=sending_ip&a=192.0.2.10&b=192.0.2.11"),
         ("dmarc", "/dmarc", "dmarc", ""))


def fail(message: str, status: int = 2):
    print(f"screenshots: {message}", file=sys.stderr)
    sys.exit(status)


def environment(code: Path, port: int | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_") and k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = str(code)
    if port:
        env["POSTWATCH_WEB__LISTEN"] = f"127.0.0.1:{port}"
    return env


def check_code(code: Path, cwd: Path) -> None:
    """The `postwatch` and `dashboard` packages that run are DIR's, not the installed ones."""
    out = subprocess.run([sys.executable, "-c", "import postwatch, dashboard; print(postwatch.__file__); "
                          "print(dashboard.__file__)"], cwd=cwd, env=environment(code),
                         capture_output=True, text=True, check=True).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(code):
            fail(f"{path} is not under {code}: --code would not run that tree")
    print(f"code: {code} ({', '.join(out)})")


def play_demo(code: Path, folder: Path, args) -> None:
    command = [sys.executable, "-m", "postwatch.cli", "demo", "--days", str(args.days), "--seed", str(args.seed),
               "--end", args.end.isoformat()]
    print("playing:", " ".join(command[1:]), f"(in {folder})", flush=True)
    done = subprocess.run(command, cwd=folder, env=environment(code), capture_output=True, text=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        fail(f"the demo failed with status {done.returncode}:\n{done.stderr[-3000:]}", 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postwatch serve exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def chrome(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # given explicitly: Selenium Manager must not run (it downloads)
    for flag in FLAGS + (f"--window-size={WIDTH},1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver


def wait(driver, condition, why: str, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=f"waiting for {why}")


def log_in(driver, base: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    driver.get(base + "/login")
    for field, value in (("username", user), ("password", password)):
        driver.find_element(By.ID, field).send_keys(value)
    button = driver.find_element(By.ID, "login-button")
    button.click()
    wait(driver, expected_conditions.staleness_of(button), "the answer to the login form")
    if "/login" in driver.current_url:
        raise RuntimeError(f"the login as {user} was refused")


def shoot(driver, base: str, search: str, outdir: Path) -> None:
    from selenium.webdriver.common.by import By

    for name, path, page, extra in SHOTS:
        driver.set_window_size(WIDTH, 1000)
        driver.get(base + path + search + extra)
        if "/login" in driver.current_url:
            raise RuntimeError(f"{path} sent back to the login form")
        wait(driver, lambda d: d.find_elements(By.ID, f"page-{page}"), f"the {name} page")
        wait(driver, lambda d: d.execute_script(PLOTTED, f"page-{page}"), f"the {name} charts")
        if page == "compare":
            wait(driver, lambda d: d.execute_script(COMPARED), "the two groups compared")
        driver.set_window_size(WIDTH, driver.execute_script(FULL_HEIGHT))
        time.sleep(1.5)  # the charts redraw to the new size
        wait(driver, lambda d: d.execute_script(PLOTTED, f"page-{page}"), f"the {name} charts redrawn")
        target = outdir / f"{name}.png"
        driver.save_screenshot(str(target))
        print(target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--store", type=Path, help="a folder where the demo was played already")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 30))
    parser.add_argument("--code", type=Path, default=REPO, help="the source tree to run (default: %(default)s)")
    args = parser.parse_args()
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        fail(f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        fail("selenium is not installed (pip install -e '.[test]')")
    code = args.code.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="postwatch-shots-"))
    server = driver = None
    log: list[str] = []
    try:
        folder = args.store.resolve() if args.store else scratch / "store"
        folder.mkdir(exist_ok=True)
        check_code(code, folder)
        if not args.store:
            play_demo(code, folder, args)
        user, _, password = (folder / "var" / "demo-login").read_text(encoding="utf-8").strip().partition(" ")
        start = args.end - timedelta(days=args.days - 1)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "serve", "--role", "web"], cwd=folder,
                                  env=environment(code, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
        wait_port(port, server)
        driver = chrome(str(scratch / "chromium"))
        base = f"http://127.0.0.1:{port}"
        args.outdir.mkdir(parents=True, exist_ok=True)
        log_in(driver, base, user, password)
        shoot(driver, base, f"?start={start}&end={args.end}", args.outdir)
    except Exception as error:
        print("".join(log[-40:]), file=sys.stderr)
        fail(f"{type(error).__name__}: {error}", 1)
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    errors = [line for line in log if '" 500 ' in line or "Traceback" in line]
    if errors:
        print(f"screenshots: the server logged {len(errors)} error(s), the first: {errors[0].strip()}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
