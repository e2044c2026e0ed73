"""Inputs that cannot be read, given to `parse`, `explain` and `ingest`: each is named on
standard error after the others were read, and the exit status is 1. The tests run as root,
who reads any file whatever its mode, so the unreadable inputs are ones that fail for root
too: a missing path, a path through a file as if it were a folder, a symbolic link to
nothing, a FIFO (which would block a reader forever)."""
import json
import os
from pathlib import Path

import pytest

from tests.ingest.messages import postfix_dsn
from tests.postwatch.test_cli import run


@pytest.fixture
def inputs(tmp_path):
    """(the readable message, the bad paths with what stderr says of each)."""
    good = tmp_path / "good.eml"
    good.write_bytes(postfix_dsn())
    os.mkfifo(tmp_path / "pipe.eml")
    (tmp_path / "dangling.eml").symlink_to(tmp_path / "nowhere.eml")
    bad = {
        "/nonexistent.eml": "postwatch: /nonexistent.eml: no such file or folder",
        f"{good}/x.eml": f"postwatch: {good}/x.eml: no such file or folder ({good} is a file, not a folder)",
        str(tmp_path / "dangling.eml"): f"postwatch: {tmp_path / 'dangling.eml'}: no such file or folder "
                                        f"(a symbolic link to {tmp_path / 'nowhere.eml'}, which does not exist)",
        str(tmp_path / "pipe.eml"): f"postwatch: {tmp_path / 'pipe.eml'}: cannot read it: not a regular file (a FIFO)",
    }
    return good, bad


@pytest.mark.parametrize("command", [["parse"], ["parse", "--json"], ["explain"], ["explain", "--json"],
                                     ["ingest", "--no-progress"]])
def test_bad_paths_are_named_on_stderr_the_others_read_and_the_exit_is_1(tmp_path, inputs, command):
    good, bad = inputs
    proc = run(command + [*bad, str(good)], cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == list(bad.values()) + [f"postwatch: {len(bad)} inputs could not be read"]
    assert "Traceback" not in proc.stderr
    if command[0] == "ingest":
        assert "1 messages" in proc.stdout and "bounce" in proc.stdout
    else:  # the good input only: a path that is not there is not a quarantined message
        assert str(good) in proc.stdout and "quarantined" not in proc.stdout
        for path in bad:
            assert path not in proc.stdout
    if "--json" in command:
        (row,) = map(json.loads, proc.stdout.splitlines())
        assert row["file"] == str(good) and row["kind"] == "bounce"


def test_one_missing_path_alone(tmp_path):
    proc = run(["parse", "/nonexistent.eml"], cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "postwatch: /nonexistent.eml: no such file or folder\n")


def test_good_paths_exit_0_and_say_nothing_on_stderr(tmp_path, inputs):
    good, _ = inputs
    for command in (["parse"], ["explain"], ["ingest", "--no-progress"]):
        proc = run(command + [str(good)], cwd=tmp_path, check=False)
        assert (proc.returncode, proc.stderr) == (0, ""), command


def test_unreadable_entries_inside_a_folder_of_many_are_named(tmp_path):
    """Enough files for `parse` to hand them to its worker processes; a FIFO and a link to
    nothing among them."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        (folder / f"{i:03d}.eml").write_bytes(postfix_dsn())
    os.mkfifo(folder / "050-pipe.eml")
    (folder / "100-gone.eml").symlink_to(folder / "nothing")
    proc = run(["parse", "--json", str(folder)], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["file"]).name for r in rows] == [f"{i:03d}.eml" for i in range(150)]
    assert all(r["kind"] == "bounce" for r in rows)
    assert proc.stderr.splitlines() == [
        f"postwatch: {folder / '050-pipe.eml'}: cannot read it: not a regular file (a FIFO)",
        f"postwatch: {folder / '100-gone.eml'}: no such file or folder (a symbolic link to "
        f"{folder / 'nothing'}, which does not exist)",
        "postwatch: 2 inputs could not be read"]


def test_a_file_name_that_is_not_utf8_is_read_and_shown_with_the_byte_escaped(tmp_path):
    """Linux file names are bytes; one that is not UTF-8 was a traceback in `ingest` (the store
    cannot hold the name as an origin)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.eml")).write_bytes(postfix_dsn())
    shown = str(folder / "caf\\xe9.eml")
    proc = run(["ingest", "--no-progress", "--json", str(folder)], cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert json.loads(proc.stdout)["kinds"]["bounce"] == {"messages": 1, "parsed": 1}
    (row,) = map(json.loads, run(["parse", "--json", str(folder)], cwd=tmp_path).stdout.splitlines())
    assert row["file"] == shown and row["kind"] == "bounce"
