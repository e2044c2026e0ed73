"""The README is the user's manual: every command and every configuration key is in it."""
import re

from postwatch.cli import build_parser, iter_commands
from postwatch.config import describe
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_command_is_documented():
    missing = [" ".join(path) for path, _ in iter_commands(build_parser())
               if f"postwatch {' '.join(path)}" not in README]
    assert missing == []


def test_every_option_is_documented():
    missing = []
    for path, sub in iter_commands(build_parser()):
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in README:
                    missing.append(f"postwatch {' '.join(path)} {flag}")
    assert missing == []


def test_every_configuration_key_is_documented_with_its_variable():
    missing = []
    for key, env, _default, _type in describe():
        row = re.search(rf"^\| `{re.escape(key)}` \| `{re.escape(env)}` \|", README, re.M)
        if row is None:
            missing.append(key)
    assert missing == []


def test_the_first_two_commands_open_the_manual():
    head = README[:1500]
    assert "make run" in head and "make test" in head
