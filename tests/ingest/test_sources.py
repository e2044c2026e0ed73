import mailbox

from ingest.sources import iter_inputs
from tests.ingest.messages import postfix_dsn, vacation_reply


def test_folders_are_walked_recursively_in_order(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "2.eml").write_bytes(b"Subject: two\n\n2\n")
    (tmp_path / "a" / "1.eml").write_bytes(b"Subject: one\n\n1\n")
    (tmp_path / "a" / ".hidden").write_bytes(b"x")
    names = [i.name for i in iter_inputs([str(tmp_path / "a")])]
    assert names == [str(tmp_path / "a" / "1.eml"), str(tmp_path / "a" / "b" / "2.eml")]


def test_an_mbox_yields_each_message(tmp_path):
    path = tmp_path / "feedback.mbox"
    box = mailbox.mbox(str(path))
    box.add(postfix_dsn())
    box.add(vacation_reply())
    box.close()
    items = list(iter_inputs([str(path)]))
    assert [i.name for i in items] == [f"{path}:1", f"{path}:2"]
    assert all(i.load() is not None for i in items)
    assert items[0].raw.startswith(b"Return-Path: <>") and b"Out of office" in items[1].raw


def test_a_maildir_yields_new_and_cur(tmp_path):
    md = mailbox.Maildir(str(tmp_path / "Maildir"))
    md.add(postfix_dsn())
    md.add(vacation_reply())
    items = list(iter_inputs([str(tmp_path)]))  # found inside a folder too
    assert len(items) == 2 and all(i.load() and i.error is None for i in items)


def test_a_single_message_file_is_read_where_it_is_parsed(tmp_path):
    path = tmp_path / "b.eml"
    path.write_bytes(postfix_dsn())
    (item,) = iter_inputs([str(path)])
    (gone,) = iter_inputs([str(path)])
    assert item.raw is None and item.load() == postfix_dsn()
    path.unlink()  # gone between listing and reading
    assert gone.load() is None and "cannot read" in gone.error


def test_a_missing_path_is_reported_not_raised(tmp_path):
    (item,) = iter_inputs([str(tmp_path / "nope.eml")])
    assert item.error and "no such file" in item.error


def test_an_eml_starting_with_a_from_line_is_one_message(tmp_path):
    path = tmp_path / "one.eml"
    path.write_bytes(b"From MAILER-DAEMON Tue Nov  3 10:00:00 2026\n" + postfix_dsn()
                     + b"\n\nFrom nobody Tue Nov  3 10:00:00 2026\n")
    assert len(list(iter_inputs([str(path)]))) == 1


def test_a_folder_that_cannot_be_listed_is_an_input_in_error(tmp_path, monkeypatch):
    """As root every folder can be listed whatever its mode, so the refusal is made here."""
    import os

    import ingest.sources

    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.eml").write_bytes(postfix_dsn())
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "b.eml").write_bytes(postfix_dsn())
    real = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(ingest.sources.os, "scandir", scandir)
    items = list(iter_inputs([str(tmp_path)]))
    assert [(i.name, i.error) for i in items] == [
        (str(tmp_path / "locked"), f"{tmp_path / 'locked'}: cannot read the folder: permission denied"),
        (str(tmp_path / "open" / "b.eml"), None)]


def test_a_file_that_cannot_be_opened_is_an_input_in_error(tmp_path, monkeypatch):
    import ingest.sources

    (tmp_path / "a.eml").write_bytes(postfix_dsn())
    monkeypatch.setattr(ingest.sources.os, "access", lambda path, mode: False)
    (item,) = iter_inputs([str(tmp_path / "a.eml")])
    assert item.error == f"{tmp_path / 'a.eml'}: cannot read it: permission denied"


def test_symbolic_links_to_files_are_read_and_to_folders_are_not_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.eml").write_bytes(postfix_dsn())
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link.eml").symlink_to(tmp_path / "real" / "a.eml")
    (tmp_path / "top" / "folder").symlink_to(tmp_path / "real")
    items = list(iter_inputs([str(tmp_path / "top")]))
    assert [(i.name, i.error) for i in items] == [(str(tmp_path / "top" / "link.eml"), None)]
