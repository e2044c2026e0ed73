"""`postwatch suppression ...` and `postwatch forget` as a person runs them."""
import json

from tests.postwatch.test_cli import run


def test_suppression_commands_end_to_end(tmp_path):
    (tmp_path / "in.csv").write_text("address,scope,reason\nA@Example.com,,imported\nnot-an-address,,x\n"
                                     "b@example.com,campaign:3,imported\n")
    imp = run(["suppression", "import", "in.csv"], cwd=tmp_path, check=False)
    assert imp.returncode == 1
    assert "in.csv:3: 'not-an-address' is not an e-mail address" in imp.stderr
    assert "2 added, 0 already suppressed, 1 row(s) with errors" in imp.stdout
    run(["suppression", "add", "c@Bücher.example", "--reason", "asked us", "--expires", "30"], cwd=tmp_path)
    assert "not suppressed" in run(["suppression", "remove", "zz@example.com", "--reason", "x"], cwd=tmp_path,
                                   check=False).stderr
    run(["suppression", "remove", "b@example.com", "--scope", "campaign:3", "--reason", "resubscribed"], cwd=tmp_path)
    listed = run(["suppression", "list", "--json", "--search", "xn--bcher"], cwd=tmp_path).stdout.splitlines()
    assert [json.loads(x)["address"] for x in listed] == ["c@xn--bcher-kva.example"]
    feed = json.loads(run(["suppression", "changes", "--since", "1", "--limit", "2"], cwd=tmp_path).stdout)
    assert [(c["cursor"], c["op"], c["address"]) for c in feed["changes"]] == [
        (2, "add", "b@example.com"), (3, "add", "c@xn--bcher-kva.example")]
    assert feed["next"] == 3
    run(["suppression", "export", "--format", "csv", "out.csv"], cwd=tmp_path)
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "address,scope,reason,source,created_at,expires_at"

    refused = run(["forget", "a@example.com", "--yes"], cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "privacy.salt" in refused.stderr
    done = run(["forget", "a@example.com", "--yes"], cwd=tmp_path, env={"POSTWATCH_PRIVACY__SALT": "pepper"})
    assert "kept as hmac-sha256:" in done.stdout
    after = run(["suppression", "list"], cwd=tmp_path).stdout
    assert "a@example.com" not in after and "hmac-sha256:" in after
    shown = run(["config", "show"], cwd=tmp_path, env={"POSTWATCH_PRIVACY__SALT": "pepper"}).stdout
    assert "pepper" not in shown and "privacy.salt = '(set)'" in shown
