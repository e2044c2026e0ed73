"""Real servers for the collector tests and benchmarks, started on loopback and stopped after.

Dovecot runs in the foreground with a configuration written into a throw-away folder: its
own base_dir, state and log, one passwd-file user (uid nobody) with a Maildir, an imaps
listener with a self-signed certificate, and a plaintext one.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
NOBODY = 65534


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Dovecot:
    root: Path
    port: int  # plaintext IMAP
    tls_port: int  # imaps
    cert: Path
    user: str
    password: str
    proc: subprocess.Popen

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / self.user

    def url(self, folder: str = "INBOX", tls: bool = True) -> str:
        if tls:
            return f"imaps://{self.user}:{self.password}@127.0.0.1:{self.tls_port}/{folder}"
        return f"imap+plain://{self.user}:{self.password}@127.0.0.1:{self.port}/{folder}"

    def deliver(self, raw: bytes, name: str | None = None) -> None:
        """Drop a message into INBOX's Maildir, as a local delivery agent would."""
        new = self.maildir / "new"
        name = name or f"{time.time_ns()}.{os.getpid()}.{id(raw)}.test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, NOBODY, NOBODY)
        os.rename(tmp, new / name)

    def folder_files(self, folder: str) -> list[Path]:
        base = self.maildir if folder == "INBOX" else self.maildir / f".{folder}"
        return [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot(idle: bool = True) -> Dovecot:
    """Start a private Dovecot; the caller stops it. Raises when it cannot start."""
    from ingest.collectors.tlscert import ensure_self_signed

    root = Path(tempfile.mkdtemp(prefix="pw-dovecot-"))
    os.chmod(root, 0o755)  # the login and mail processes run as other users
    cert, key = ensure_self_signed(root / "tls", "localhost")
    os.chmod(key, 0o644)
    user, password = "reports", "s3cret-test"
    for sub in ("mail", f"mail/{user}", f"mail/{user}/new", f"mail/{user}/cur", f"mail/{user}/tmp", "home"):
        (root / sub).mkdir(exist_ok=True)
        os.chown(root / sub, NOBODY, NOBODY)
    (root / "passwd").write_text(
        f"{user}:{{PLAIN}}{password}:{NOBODY}:{NOBODY}::{root}/home::\n")
    port, tls_port = free_port(), free_port()
    caps = "" if idle else "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE UIDPLUS MOVE\n"
    (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = pw-{port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{caps}""")
    log = open(root / "stdout.log", "wb")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(tls_port, proc=proc)
        wait_port(port, proc=proc)
    except RuntimeError as exc:
        text = (root / "stdout.log").read_text(errors="replace") + (root / "dovecot.log").read_text(errors="replace") \
            if (root / "dovecot.log").exists() else (root / "stdout.log").read_text(errors="replace")
        proc.kill()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"dovecot did not start: {exc}\n{text[-2000:]}") from None
    return Dovecot(root, port, tls_port, cert, user, password, proc)
