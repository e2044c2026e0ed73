"""The OpenAPI document of the suppression feed: served without a token, the same routes as the
blueprint, and the shapes the real server answers with."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from sender.config import WebConfig
from sender.web import create_app
from store.suppressions import add_suppression, remove_suppression
from tests.conftest import ROOT
from tests.sender.http_client import serve

T = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"
DOC = json.loads((ROOT / "sender" / "openapi.json").read_text())
METHODS = {"GET", "POST", "DELETE", "PUT", "PATCH"}


def app_for(store):
    web = WebConfig(read_tokens=(READ,), write_tokens=(WRITE,), secret="s3cret-unsubscribe-key")
    config = SimpleNamespace(database=None, web=web, privacy=SimpleNamespace(salt="salt-for-the-tests"))
    return create_app(config, sessions=store, clock=lambda: T)


@pytest.fixture
def api(store):
    with store.begin() as s:
        add_suppression(s, "Gone@Example.NET", reason="userunknown", source="bounce", now=T - timedelta(hours=3))
        add_suppression(s, "abuse@example.org", reason="abuse", source="complaint", now=T - timedelta(hours=2))
        add_suppression(s, "soft@example.com", reason="mailboxfull", source="bounce", now=T - timedelta(hours=2),
                        scope="domain:news.example", expires_at=T + timedelta(days=90))
        remove_suppression(s, "abuse@example.org", reason="complaint withdrawn", now=T - timedelta(hours=1))
    with serve(app_for(store)) as client:
        yield client


def registered(app) -> set[tuple[str, str]]:
    """(OpenAPI path, METHOD) of every route the blueprint registers."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes |= {(path, m) for m in rule.methods & METHODS}
    return routes


def documented() -> set[tuple[str, str]]:
    return {(path, m.upper()) for path, item in DOC["paths"].items() for m in item if m.upper() in METHODS}


def test_every_api_route_is_documented_and_every_documented_path_is_served(store):
    routes = registered(app_for(store))
    api_routes = {r for r in routes if r[0].startswith("/api/v1/")}
    assert api_routes and api_routes <= documented()
    assert documented() <= routes
    assert ("/api/v1/suppressions", "GET") in documented()


def test_the_document_is_served_without_a_token(api):
    answer = api.get("/api/v1/openapi.json")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
    assert answer.json == DOC
    assert DOC["openapi"].startswith("3.1")


# -- the answers match their schemas --------------------------------------------------------------

def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        node = DOC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool, "null": type(None)}


def check(value, schema: dict, where: str = "$") -> list[str]:
    """What in `value` breaks `schema` (the parts of JSON Schema the document uses)."""
    schema = resolve(schema)
    problems = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        ok = any(isinstance(value, TYPES[t]) and not (t == "integer" and isinstance(value, bool)) for t in types)
        if not ok:
            return [f"{where}: {value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} is not {schema['const']!r}")
    if schema.get("format") == "date-time" and isinstance(value, str):
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            problems.append(f"{where}: {value!r} is not a date-time")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{where}: no {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += check(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check(item, schema["items"], f"{where}[{i}]")
    return problems


def response_schema(path: str, method: str, status: int) -> dict:
    return resolve(DOC["paths"][path][method]["responses"][str(status)])["content"]["application/json"]["schema"]


def test_the_checker_sees_a_wrong_shape():
    schema = response_schema("/api/v1/suppressions", "get", 200)
    assert check({"changes": [{"cursor": "1"}], "next": 1}, schema)
    assert check({"changes": []}, schema) == ["$: no 'next'"]


def test_a_real_feed_answer_matches_the_documented_schema(api):
    answer = api.get("/api/v1/suppressions?since=0&limit=10", token=READ)
    assert answer.status == 200
    body = answer.json
    assert len(body["changes"]) == 4 and {c["op"] for c in body["changes"]} == {"add", "remove"}
    assert check(body, response_schema("/api/v1/suppressions", "get", 200)) == []
    assert int(answer.headers["X-Next-Cursor"]) == body["next"]
    csv_answer = api.get("/api/v1/suppressions?format=csv", token=READ)
    assert csv_answer.headers["Content-Type"].startswith("text/csv")
    assert "text/csv" in DOC["paths"]["/api/v1/suppressions"]["get"]["responses"]["200"]["content"]


def test_the_other_answers_match_their_schemas(api):
    looked = api.get("/api/v1/suppressions/soft@example.com", token=READ)
    assert looked.status == 200 and looked.json["suppressed"]
    assert check(looked.json, response_schema("/api/v1/suppressions/{address}", "get", 200)) == []
    added = api.call("POST", "/api/v1/suppressions", token=WRITE, json_body={"address": "new@example.net", "reason": "manual"})
    assert added.status == 201
    assert check(added.json, response_schema("/api/v1/suppressions", "post", 201)) == []
    removed = api.call("DELETE", "/api/v1/suppressions/new@example.net?reason=asked", token=WRITE)
    assert removed.status == 200
    assert check(removed.json, response_schema("/api/v1/suppressions/{address}", "delete", 200)) == []
    refused = api.get("/api/v1/suppressions")
    assert refused.status == 401
    assert check(refused.json, response_schema("/api/v1/suppressions", "get", 401)) == []
