"""`postwatch web` as an operator runs it: a subprocess serving on a loopback port until SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.ingest.collectors.servers import free_port, wait_port
from tests.sender.http_client import Client

TOKEN = "read-token-0123456789abcdef"


def test_web_serves_the_feed_logs_requests_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update({"POSTWATCH_WEB__READ_TOKENS": TOKEN, "POSTWATCH_WEB__SECRET": "unsubscribe-key"})
    proc = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "web", "--listen", f"127.0.0.1:{port}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, timeout=60, proc=proc)
        web = Client(f"http://127.0.0.1:{port}")
        feed = web.get("/api/v1/suppressions?since=0", token=TOKEN)
        assert feed.status == 200 and feed.json == {"changes": [], "next": 0}
        assert feed.headers["Server"] == "postwatch"
        assert web.get("/api/v1/suppressions").status == 401
        assert web.get("/unsubscribe/abcdefgh").status == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"serving on http://127.0.0.1:{port}" in err
    assert '"GET /api/v1/suppressions?since=0" 200' in err
    assert '"GET /unsubscribe/abcd…" 404' in err and "abcdefgh" not in err  # a token is never logged whole
    assert TOKEN not in err
    assert "SIGTERM received" in err and "stopped" in err
    assert (tmp_path / "var" / "postwatch.db").is_file()  # the schema was created first


def test_web_refuses_a_listen_address_it_cannot_read(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "web", "--listen", "nowhere"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is not HOST:PORT" in proc.stderr


def test_config_show_hides_the_bearer_tokens_and_the_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update({"POSTWATCH_WEB__READ_TOKENS": TOKEN, "POSTWATCH_WEB__WRITE_TOKENS": "write-" + TOKEN,
                "POSTWATCH_WEB__SECRET": "unsubscribe-key"})
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "config", "show"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "web.read_tokens = '(set)'" in proc.stdout and "web.secret = '(set)'" in proc.stdout
    assert TOKEN not in proc.stdout and "unsubscribe-key" not in proc.stdout
    assert "webhooks.postmark_secret_header = 'X-Postmark-Secret'" in proc.stdout  # a header's name, shown
