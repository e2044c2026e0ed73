"""Composing one message: the headers DESIGN.md fixes, links, escaping, strict fields."""
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default

import pytest

from ingest import verp
from sender.compose import RenderError, compose, load_template, message_id, render
from tests.sender.helpers import UNSUB_KEY, VERP_KEY, make_template, settings

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def identity(**utm):
    s = settings("127.0.0.1:25")
    return type(s)(**{**s.__dict__, "utm": utm}).identity()


def test_headers_return_path_and_unsubscribe_links(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    c = compose(template, {"name": "Ann"}, "ann@example.org", 42, identity(), NOW)
    msg = message_from_bytes(c.as_bytes(), policy=default)
    assert msg["Subject"] == "Hello Ann" and msg["To"] == "ann@example.org"
    assert msg["Feedback-ID"] == "spring:postwatch:bulk:postwatch"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # the return path is the signed token of the send-log row
    assert c.mail_from.startswith("bounces+t-") and c.mail_from.endswith("@send.example.com")
    assert verp.decode(c.mail_from, VERP_KEY).send_id == 42
    links = [x.strip().strip("<>") for x in str(msg["List-Unsubscribe"]).split(",")]
    https, mailto = links
    token = https.rsplit("/", 1)[1]
    assert https == f"https://pw.example.com/unsubscribe/{token}"
    assert mailto.startswith(f"mailto:unsubscribe+{token}@send.example.com")
    assert verp.read_token(token, UNSUB_KEY, purpose="unsubscribe").send_id == 42
    assert verp.read_token(token, VERP_KEY).valid is False  # not usable as a return path
    assert https in msg.get_body(("plain",)).get_content()


def test_message_id_is_stable_per_row_and_differs_between_rows(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    a = compose(template, {"name": "A"}, "a@example.org", 7, identity(), NOW)
    b = compose(template, {"name": "A"}, "a@example.org", 7, identity(), NOW.replace(hour=10))
    assert a.message_id == b.message_id == message_id("spring", "a@example.org", 7, "send.example.com")
    assert compose(template, {"name": "A"}, "a@example.org", 8, identity(), NOW).message_id != a.message_id


def test_utm_on_every_link_but_the_unsubscribe_one(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    c = compose(template, {"name": "A"}, "a@example.org", 1, identity(source="news", medium="email"), NOW)
    msg = message_from_bytes(c.as_bytes(), policy=default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "https://shop.example.com/new?utm_source=news&utm_medium=email&utm_campaign=spring" in text
    assert "https://shop.example.com/new?a=1&amp;utm_source=news&amp;utm_medium=email&amp;utm_campaign=spring" in html
    assert "unsubscribe/" in text and "utm_" not in text.split("Leave: ")[1]
    assert 'utm_' not in html.split("leave")[0].rsplit("<a", 1)[1]


def test_html_is_escaped_text_is_not(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    r = render(template, {"name": "<b>Bo & Co</b>"})
    assert "&lt;b&gt;Bo &amp; Co&lt;/b&gt;" in r.html and "<b>Bo & Co</b>" in r.text


def test_a_missing_field_is_an_error_not_a_gap(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    with pytest.raises(RenderError, match="'name' is undefined"):
        render(template, {})


def test_a_broken_template_says_which_file_and_line(tmp_path):
    from sender.compose import TemplateError

    folder = make_template(tmp_path / "t", text="ok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"body.txt, line 2"):
        load_template(folder)
    with pytest.raises(TemplateError, match="has no subject.txt"):
        load_template(_without(tmp_path / "v", "subject.txt"))


def _without(folder, name):
    make_template(folder)
    (folder / name).unlink()
    return folder


def test_a_non_ascii_recipient_needs_smtputf8(tmp_path):
    template = load_template(make_template(tmp_path / "t"))
    c = compose(template, {"name": "C"}, "chloé@xn--exmple-cua.com", 3, identity(), NOW)
    assert c.smtputf8
    assert "To: chloé@xn--exmple-cua.com" in c.as_bytes().decode("utf-8")
    assert not compose(template, {"name": "C"}, "c@example.com", 3, identity(), NOW).smtputf8
