"""The manual — README.md and the pages under docs/ — covers every command, every option and
every configuration key, names nothing that does not exist, and builds with mkdocs --strict."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postwatch.cli import build_parser, iter_commands
from postwatch.config import describe
from tests.conftest import ROOT, need

README = (ROOT / "README.md").read_text()
PAGES = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
MANUAL = README + "\n".join(PAGES.values())
COMMANDS = PAGES["commands.md"]
CONFIGURATION = PAGES["configuration.md"]
KEY_ROW = re.compile(r"^\| `([a-z_]+)\.([a-z_]+)` \| `(POSTWATCH_[A-Z_]+)` \|", re.M)


def commands():
    return [(path, sub) for path, sub in iter_commands(build_parser())]


def test_every_command_is_on_the_commands_page_with_an_example():
    missing = [" ".join(path) for path, _ in commands() if f"postwatch {' '.join(path)}" not in COMMANDS]
    assert missing == []
    top = {path[0] for path, _ in commands()}
    headed = set(re.findall(r"^### postwatch ([\w-]+)", COMMANDS, re.M))
    assert top - headed == set(), "every command has a section of its own"
    sections = re.split(r"^### ", COMMANDS, flags=re.M)[1:]
    assert [s.split("\n", 1)[0] for s in sections if "```sh" not in s] == [], "every section shows an example"


def test_the_commands_page_names_only_real_commands():
    real = {" ".join(path) for path, _ in commands()}
    named = set(re.findall(r"^### postwatch ([\w ]+?)\s*$", COMMANDS, re.M))
    assert named - real == set()


def test_every_option_is_documented():
    missing = []
    for path, sub in commands():
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in COMMANDS:
                    missing.append(f"postwatch {' '.join(path)} {flag}")
    assert missing == []


def test_every_configuration_key_is_in_its_section_with_its_variable():
    tables = {}
    for section in re.split(r"^## ", CONFIGURATION, flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        tables[heading.strip()] = body
    missing = []
    for key, env, _default, _type in describe():
        section = key.split(".", 1)[0]
        row = re.search(rf"^\| `{re.escape(key)}` \| `{re.escape(env)}` \|", tables.get(f"[{section}]", ""), re.M)
        if row is None:
            missing.append(key)
    assert missing == []


def test_no_documented_key_or_variable_is_unknown():
    known = {key for key, *_ in describe()}
    envs = {env for _key, env, *_ in describe()}
    stale = [f"{section}.{name}" for section, name, _env in KEY_ROW.findall(MANUAL) if f"{section}.{name}" not in known]
    assert stale == []
    named = set(re.findall(r"\bPOSTWATCH_[A-Z]+__[A-Z_]+\b", MANUAL)) - {"POSTWATCH_SECTION__KEY"}
    assert named - envs == set()


def test_the_first_two_commands_open_the_readme():
    head = README[:1500]
    assert "make run" in head and "make test" in head


def test_the_readme_is_what_a_newcomer_reads_first():
    assert len(README.splitlines()) <= 120
    for page in ("getting-started.md", "commands.md", "configuration.md", "operations.md", "api.md",
                 "scores.md", "development.md"):
        assert f"(docs/{page})" in README
    assert "make docs" in README


def test_one_name_for_the_command():
    """`postwatch` everywhere, once the reader has activated .venv; `.venv/bin/postwatch` only
    where that convention is explained."""
    for name, text in {"README.md": README, **PAGES}.items():
        for line in text.splitlines():
            if ".venv/bin/postwatch" in line:
                assert "activate" in text and "write `.venv/bin/postwatch`" in text.replace("\n", " "), name


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert [name for name in PAGES if f": {name}" not in nav] == []


def test_the_manual_builds_with_mkdocs_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    need(mkdocs is not None, "mkdocs is not installed: pip install -e '.[docs]' (make test installs it)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "api" / "index.html").exists()
    assert "fonts.googleapis.com" not in (tmp_path / "site" / "index.html").read_text()
