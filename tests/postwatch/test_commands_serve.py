"""`postwatch user add|hash`: the entries of web.users, made as an operator makes them."""
from __future__ import annotations

import os
import subprocess
import sys

import pyotp

from dashboard.auth import check_password
from dashboard.config import parse_user
from postwatch.config import load


def run(args, cwd, stdin="", env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "postwatch.cli", *args], cwd=cwd, input=stdin, env=full,
                          capture_output=True, text=True, timeout=120)


def test_user_add_prints_an_entry_the_configuration_accepts(tmp_path):
    proc = run(["user", "add", "ann", "--role", "editor", "--totp", "--password-stdin"], tmp_path,
               stdin="a long password\n")
    assert proc.returncode == 0, proc.stderr
    entry = proc.stdout.strip()
    user = parse_user(entry)
    assert (user.name, user.role) == ("ann", "editor") and user.password_hash.startswith("scrypt:")
    assert check_password(user, "a long password") and not check_password(user, "another one")
    assert "otpauth://totp/postwatch:ann?secret=" + user.totp_secret in proc.stderr
    assert pyotp.TOTP(user.totp_secret).now().isdigit()
    config = load(environ={"POSTWATCH_WEB__USERS": entry})
    assert config.web.accounts()["ann"] == user
    shown = run(["config", "show"], tmp_path, env={"POSTWATCH_WEB__USERS": entry}).stdout
    assert "web.users = ('ann:editor:(set)',)" in shown and user.password_hash not in shown


def test_user_hash_and_its_refusals(tmp_path):
    proc = run(["user", "hash", "--password-stdin"], tmp_path, stdin="another password\n")
    assert proc.returncode == 0 and proc.stdout.startswith("scrypt:")
    short = run(["user", "hash", "--password-stdin"], tmp_path, stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr and short.stdout == ""
    bad = run(["user", "add", "a b", "--password-stdin"], tmp_path, stdin="a long password\n")
    assert bad.returncode == 2 and "may only have" in bad.stderr
