"""What the SMTP protocol relies on in aiosmtpd and asyncio beyond their documented
interfaces (ingest.collectors.aiosmtpd_internals) is still there, with the shape it is used in;
and the list cannot drift: a private name of theirs used in the module and missing from the
list fails here too. A failure names the internal and the installed aiosmtpd."""
from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import inspect
import re
import sys
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, syntax

from ingest.collectors import smtp_protocol
from ingest.collectors.aiosmtpd_internals import AIOSMTPD_INIT_SKIPPED, AIOSMTPD_INTERNALS, Internal
from ingest.collectors.smtp_protocol import CALL_LIMITS, CollectorSMTP
from ingest.config import SMTPConfig

VERSIONS = f"aiosmtpd {importlib.metadata.version('aiosmtpd')}, Python {sys.version.split()[0]}"
SOURCE = Path(smtp_protocol.__file__).read_text()
# dunder names of Python's own (not internals of anyone's)
PYTHON_DUNDERS = set(dir(object)) | set(dir(type)) | set(dir(lambda: 0))


class _Handler:
    """What CollectorSMTP.__init__ reads of its handler."""

    hooks: dict = {}
    limits = None


@pytest.fixture(scope="module")
def instances():
    """A plain aiosmtpd SMTP (with a call limit, so that __init__ sets all it can), a
    CollectorSMTP, a StreamReaderProtocol and a StreamReader, on a loop that never runs."""
    loop = asyncio.new_event_loop()
    try:
        yield {
            "SMTP()": SMTP(_Handler(), loop=loop, command_call_limit=dict(CALL_LIMITS)),
            "CollectorSMTP()": CollectorSMTP(_Handler(), config=SMTPConfig(), hostname="mx.test", loop=loop),
            "asyncio.StreamReaderProtocol()": asyncio.StreamReaderProtocol(None, loop=loop),
            "asyncio.StreamReader()": asyncio.StreamReader(loop=loop),
        }
    finally:
        loop.close()


def _resolve(owner: str):
    """The object an Internal's owner names: a module, or a class of aiosmtpd.smtp or asyncio."""
    if owner == "SMTP":
        return SMTP
    if owner.startswith("asyncio."):
        return getattr(asyncio, owner.split(".", 1)[1])
    return importlib.import_module(owner)


def _assigned_on_self(cls: type) -> set[str]:
    """The attributes a class's own code assigns on `self` (those set outside __init__ too)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        try:
            text = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        names |= set(re.findall(r"\bself\.(\w+)\s*(?::[^=\n]+)?=(?!=)", text))
    return names


def _shape_problem(internal: Internal, instances) -> str | None:
    """What is wrong with one internal in the installed versions, or None."""
    owner, name, kind, params = internal
    if owner.endswith("()"):
        obj = instances[owner]
        if name in vars(obj) or name in _assigned_on_self(type(obj)):
            return None
        return "is no longer an attribute its instances get"
    try:
        container = _resolve(owner)
    except (ImportError, AttributeError) as exc:
        return f"cannot be looked up: {owner} is gone ({exc})"
    if not hasattr(container, name):
        return "is gone"
    value = getattr(container, name)
    if kind == "int" and not isinstance(value, int):
        return f"is no longer an int: {value!r}"
    if kind == "strings" and not (isinstance(value, (set, frozenset, tuple, list))
                                  and all(isinstance(v, str) for v in value) and "STARTTLS" in value):
        return f"is no longer a collection of command names: {value!r}"
    if kind == "class" and not isinstance(value, type):
        return f"is no longer a class: {value!r}"
    if kind in ("function", "method", "coroutine"):
        if not callable(value):
            return f"is no longer callable: {value!r}"
        if kind == "coroutine" and not inspect.iscoroutinefunction(value):
            return "is no longer a coroutine function (it was awaited)"
        if kind == "method" and inspect.iscoroutinefunction(value):
            return "is now a coroutine function (it was called without await)"
        if params:
            got = [p for p in inspect.signature(value).parameters if p != "self"]
            if got[:len(params)] != list(params):
                return f"takes ({', '.join(got)}) where ({', '.join(params)}) was relied on"
    return None


@pytest.mark.parametrize("internal", AIOSMTPD_INTERNALS, ids=lambda i: f"{i.owner}.{i.name}")
def test_each_internal_the_protocol_relies_on_is_still_there(internal, instances):
    problem = _shape_problem(internal, instances)
    assert problem is None, (f"{internal.owner}.{internal.name} {problem} ({VERSIONS}); "
                             "ingest/collectors/smtp_protocol.py relies on it: see ingest/collectors/aiosmtpd_internals.py")


def test_the_protocol_sets_every_attribute_aiosmtpd_sets_in_its_init(instances):
    """CollectorSMTP does not call SMTP.__init__: what aiosmtpd's code reads, it sets itself."""
    theirs, ours = set(vars(instances["SMTP()"])), set(vars(instances["CollectorSMTP()"]))
    missing = sorted(theirs - ours - set(AIOSMTPD_INIT_SKIPPED))
    assert not missing, (f"aiosmtpd's SMTP.__init__ sets {missing}, which CollectorSMTP.__init__ does not "
                         f"({VERSIONS}): set them there, or name them in AIOSMTPD_INIT_SKIPPED with the reason")
    gone = sorted(set(AIOSMTPD_INIT_SKIPPED) - theirs)
    assert not gone, f"AIOSMTPD_INIT_SKIPPED names {gone}, which SMTP.__init__ no longer sets ({VERSIONS})"


def test_help_reads_the_syntax_of_the_plain_functions_the_protocol_keeps():
    """aiosmtpd's smtp_HELP reads __smtp_syntax__ and its siblings off _smtp_methods, which
    here are the plain smtp_* functions, made once."""
    @syntax("X <y>", extended=" [z]", when="tls_context")
    def smtp_X(arg):
        pass

    shape = (smtp_X.__smtp_syntax__, smtp_X.__smtp_syntax_extended__, smtp_X.__smtp_syntax_when__)
    assert shape == ("X <y>", " [z]", "tls_context"), f"aiosmtpd's syntax() changed ({VERSIONS})"
    assert CollectorSMTP._COMMANDS["DATA"].__smtp_syntax__ == "DATA"
    assert CollectorSMTP._COMMANDS["STARTTLS"].__smtp_syntax_when__ == "tls_context"


# -- the list cannot drift -------------------------------------------------------------------

def _theirs() -> tuple[set[str], set[str]]:
    """The names an aiosmtpd SMTP has (its StreamReaderProtocol's among them): what `self.`
    reaches in the protocol; and those with asyncio's StreamReader's and StreamWriter's added:
    what anything else reaches."""
    loop = asyncio.new_event_loop()
    try:
        smtp = SMTP(_Handler(), loop=loop, command_call_limit=dict(CALL_LIMITS))
        on_self = set(dir(smtp)) | set(vars(smtp)) | _assigned_on_self(SMTP)
        reader = asyncio.StreamReader(loop=loop)
        anywhere = (on_self | set(dir(reader)) | set(vars(reader)) | _assigned_on_self(asyncio.StreamReader)
                    | set(dir(asyncio.StreamWriter)) | _assigned_on_self(asyncio.StreamWriter))
    finally:
        loop.close()
    return on_self, anywhere


def _private(name: str) -> bool:
    return name.startswith("_") and name not in PYTHON_DUNDERS


def unlisted_internals(source: str, internals: tuple[Internal, ...]) -> list[str]:
    """The private names of aiosmtpd or asyncio that `source` uses, and the names it imports
    from aiosmtpd, that `internals` does not list; and private names it uses that are
    neither its own nor listed (whose, then?)."""
    tree = ast.parse(source)
    listed = {i.name for i in internals}
    listed_imports = {(i.owner, i.name) for i in internals}
    ours: set[str] = set()  # what the module itself defines: methods, class attributes, self.x = ...
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    ours.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    ours.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    ours |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id in ({"self"} | classes):
            ours.add(node.attr)
    on_self, anywhere = _theirs()
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiosmtpd":
            for alias in node.names:
                if (node.module, alias.name) not in listed_imports:
                    problems.append(f"imports {alias.name} from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aiosmtpd":
                    problems.append(f"imports {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in listed:
            receiver = node.value
            of_self = (isinstance(receiver, ast.Name) and receiver.id == "self") or (
                isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super")
            if node.attr in (on_self if of_self else anywhere):
                problems.append(f"uses {node.attr} (line {node.lineno}), an internal of aiosmtpd or asyncio")
            elif node.attr not in ours:
                problems.append(f"uses {node.attr} (line {node.lineno}), a private name it does not define")
    return sorted(set(problems))


def test_every_private_name_of_theirs_the_module_uses_is_listed():
    problems = unlisted_internals(SOURCE, AIOSMTPD_INTERNALS)
    assert not problems, (f"ingest/collectors/smtp_protocol.py {'; '.join(problems)}, not in "
                          f"AIOSMTPD_INTERNALS ({VERSIONS}): add it there, so that it is checked")


def test_every_listed_internal_is_used():
    """An entry for what the module no longer uses goes: the list is what it relies on."""
    unused = [f"{i.owner}.{i.name}" for i in AIOSMTPD_INTERNALS if not re.search(rf"\b{re.escape(i.name)}\b", SOURCE)]
    assert not unused, f"AIOSMTPD_INTERNALS lists {unused}, which smtp_protocol.py does not use"


@pytest.mark.parametrize("added, expected", [
    ("        return self._ehlo_hook_ver\n", "uses _ehlo_hook_ver"),  # an aiosmtpd attribute
    ("        return super()._strip_command_keyword('TO:', '')\n", "uses _strip_command_keyword"),
    ("        return self._reader._buffer\n", "uses _buffer"),  # asyncio's StreamReader
    ("        return self._not_defined_anywhere\n", "uses _not_defined_anywhere"),
])
def test_the_drift_check_catches_an_unlisted_internal(added, expected):
    source = SOURCE + "\n\nclass Drift(CollectorSMTP):\n    def f(self):\n" + added
    problems = unlisted_internals(source, AIOSMTPD_INTERNALS)
    assert any(p.startswith(expected) for p in problems), problems


def test_the_drift_check_catches_an_unlisted_import_and_a_dropped_entry():
    source = SOURCE + "\nfrom aiosmtpd.smtp import CALL_LIMIT_DEFAULT\n"
    assert "imports CALL_LIMIT_DEFAULT from aiosmtpd.smtp" in unlisted_internals(source, AIOSMTPD_INTERNALS)
    dropped = tuple(i for i in AIOSMTPD_INTERNALS if i.name not in ("_call_handler_hook", "_paused", "syntax"))
    problems = unlisted_internals(SOURCE, dropped)
    for name in ("_call_handler_hook", "_paused"):
        assert any(p.startswith(f"uses {name} ") for p in problems), problems
    assert "imports syntax from aiosmtpd.smtp" in problems


def test_the_shape_check_catches_a_changed_internal(instances):
    """As a newer aiosmtpd would: a method gone, a parameter renamed, a coroutine made plain."""
    assert _shape_problem(Internal("SMTP", "_no_such_method", "method"), instances) == "is gone"
    assert "takes (" in _shape_problem(Internal("SMTP", "_getaddr", "method", ("address",)), instances)
    assert "coroutine" in _shape_problem(Internal("SMTP", "_set_rset_state", "coroutine"), instances)
    assert "attribute" in _shape_problem(Internal("SMTP()", "_no_such_attribute", "attribute"), instances)
    assert "int" in _shape_problem(Internal("aiosmtpd.smtp", "ALLOWED_BEFORE_STARTTLS", "int"), instances)
