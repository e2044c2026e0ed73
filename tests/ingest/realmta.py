"""Real MTAs on loopback for the bounce tests: Debian's Postfix (a sending and a receiving
instance, each with its own configuration, queue and log) and Dovecot LMTP with a quota.

Name service: the Postfix daemons that look names up (smtp, lmtp, smtpd) run chrooted in
their queue directory, whose etc/resolv.conf names a dnslib server on port 53 of a random
127/8 address. glibc takes no port from resolv.conf, and a chroot needs only CAP_SYS_CHROOT,
so nothing is asked of the machine's resolver and no mount namespace is needed.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dnslib.server import DNSLogger, DNSServer

from tests.dns_server import LocalDNS
from tests.ingest.collectors.servers import NOBODY, free_port, wait_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_LMTP = "/usr/lib/dovecot/lmtp"
QUOTA_PLUGIN = "/usr/lib/dovecot/modules/lib10_quota_plugin.so"


def missing_parts() -> list[str]:
    """What this machine lacks to run the real-MTA tests (empty when all is there)."""
    missing = []
    if not os.path.exists(POSTFIX) or not os.path.exists("/usr/lib/postfix/sbin/master"):
        missing.append("Postfix (Debian package postfix)")
    if not os.path.exists(DOVECOT) or not os.path.exists(DOVECOT_LMTP):
        missing.append("Dovecot LMTP (Debian package dovecot-lmtpd)")
    if not os.path.exists(QUOTA_PLUGIN):
        missing.append("Dovecot's quota plugin (Debian package dovecot-core)")
    if os.geteuid() != 0:
        missing.append("root, to start Postfix and chroot its daemons")
    return missing


class PortFiftyThreeDNS(LocalDNS):
    """tests.dns_server's zone, served on port 53 of a 127/8 address of its own, since a
    resolv.conf can name an address but not a port."""

    def start(self) -> "PortFiftyThreeDNS":
        last: OSError | None = None
        candidates = [f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
                      for _ in range(20)] + ["127.0.0.1"]
        for address in candidates:
            try:
                # queries are kept in the zone; the per-query lines would only crowd a failure's output
                self.server = DNSServer(self.zone, port=53, address=address, logger=DNSLogger("-request,-reply"))
            except OSError as exc:  # taken: try another address
                last = exc
                continue
            self.server.start_thread()
            return self
        raise RuntimeError(f"no free 127/8 address for a DNS server on port 53: {last}")

    @property
    def host(self) -> str:
        assert self.server is not None
        return self.server.server.server_address[0]


# The daemons that resolve names (smtp/lmtp clients, smtpd's peer lookup) run chrooted, so
# that they read the queue directory's etc/resolv.conf; the others need no chroot.
MASTER_CF = """\
{listeners}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       y       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
{services}
"""


@dataclass
class Postfix:
    name: str
    root: Path
    proc: subprocess.Popen

    @property
    def config_dir(self) -> Path:
        return self.root / "conf"

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def log_text(self, tail: int = 12000) -> str:
        try:
            text = self.maillog.read_text(errors="replace")
        except OSError:
            text = ""
        return f"--- {self.name} Postfix log ({self.maillog}) ---\n{text[-tail:]}"

    def flush(self) -> None:
        """Ask the queue manager to retry deferred mail now (postqueue -f)."""
        subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-f"], capture_output=True, timeout=10)

    def queue_listing(self) -> str:
        out = subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-p"], capture_output=True, timeout=10)
        return out.stdout.decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            subprocess.run([POSTFIX, "-c", str(self.config_dir), "stop"], capture_output=True, timeout=30)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                subprocess.run([POSTFIX, "-c", str(self.config_dir), "abort"], capture_output=True, timeout=30)
                self.proc.wait(10)


def start_postfix(root: Path, name: str, main: dict[str, str], listeners: list[str],
                  services: str = "", nameserver: str = "127.0.0.1",
                  files: dict[str, str] | None = None) -> Postfix:
    """Write a private instance under `root` (conf/, queue/, data/, maillog) and run it with
    `postfix start-fg`; the caller stops it. `listeners` are smtpd lines of master.cf, `files`
    extra files for conf/ (lookup tables)."""
    conf, queue, data = root / "conf", root / "queue", root / "data"
    for folder in (conf, queue, data, queue / "etc"):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.chown(data, "postfix")  # Postfix's own state (master.lock, caches)
    # The chrooted daemons' name service: files first, then the loopback DNS server; one
    # short try, so that a fault shows in seconds.
    (queue / "etc" / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
    (queue / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (queue / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    for rel, text in (files or {}).items():
        (conf / rel).write_text(text)
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(queue),
        "data_directory": str(data),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "smtp_bind_address": "127.0.0.1",
        "lmtp_bind_address": "127.0.0.1",
        "syslog_name": f"postfix-{name}",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "alias_maps": "",
        "alias_database": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        "smtp_connect_timeout": "5s",
        **main,
    }
    (conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (conf / "master.cf").write_text(MASTER_CF.format(listeners="\n".join(listeners), services=services))
    with open(root / "start.log", "wb") as log:
        proc = subprocess.Popen([POSTFIX, "-c", str(conf), "start-fg"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Postfix(name, root, proc)


def wait_postfix(postfix: Postfix, port: int, timeout: float = 20.0) -> None:
    try:
        wait_port(port, timeout=timeout, proc=postfix.proc)
    except RuntimeError as exc:
        start = (postfix.root / "start.log").read_text(errors="replace")
        postfix.stop()
        raise RuntimeError(f"Postfix ({postfix.name}) did not start: {exc}\n{start[-3000:]}\n"
                           f"{postfix.log_text(3000)}") from None


@dataclass
class DovecotLMTP:
    root: Path
    port: int
    proc: subprocess.Popen

    def log_text(self) -> str:
        parts = []
        for name in ("stdout.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- Dovecot {name} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dovecot_lmtp(root: Path, users: dict[str, str]) -> DovecotLMTP:
    """Dovecot serving LMTP on loopback with the quota plugin; `users` maps each address to
    its quota_rule (e.g. "*:storage=1K"). Every user is uid/gid nobody with a Maildir."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the delivery processes run as nobody
    for sub in ("mail", "home"):
        (root / sub).mkdir(exist_ok=True)
        os.chown(root / sub, NOBODY, NOBODY)
    lines = []
    for user, rule in users.items():
        # passwd-file's extra field sets the user's own quota rule
        lines.append(f"{user}:{{PLAIN}}unused:{NOBODY}:{NOBODY}::{root}/home::userdb_quota_rule={rule}\n")
    (root / "passwd").write_text("".join(lines))
    port = free_port()
    (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = pw-lmtp-{port}
log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
hostname = lmtp.quota.test
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_plugins = quota
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
plugin {{
  quota = maildir:User quota
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
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
""")
    # DOVECOT_HOSTDOMAIN spares Dovecot the lookup of this machine's own name
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "DOVECOT_HOSTDOMAIN": "lmtp.quota.test"}
    with open(root / "stdout.log", "wb") as log:
        proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    server = DovecotLMTP(root, port, proc)
    try:
        wait_port(port, proc=proc)
    except RuntimeError as exc:
        text = server.log_text()
        server.stop()
        raise RuntimeError(f"Dovecot LMTP did not start: {exc}\n{text}") from None
    return server


def send(port: int, mail_from: str, rcpt: str, raw: bytes) -> None:
    """Submit one message over SMTP to the sending Postfix."""
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.sender.test", timeout=15) as smtp:
        smtp.sendmail(mail_from, [rcpt], raw)


def wait_until(predicate, timeout: float, step: float = 0.25, tick=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if tick is not None:
            tick()
        time.sleep(step)
    return predicate()
