"""`vigil rules test` and `vigil rules lint` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.daemon import SHARED_DATA

from collector.cli import main

REGRESSION = SHARED_DATA / "sigma" / "regression" / "regression_data" / "rules" / "windows"
RULES = SHARED_DATA / "sigma" / "rules" / "windows"
FAILED = "eeeeeeee-0000-4000-8000-000000000001"


def alerts(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.skipif(not REGRESSION.is_dir(), reason=f"SigmaHQ data not found under {REGRESSION}")
def test_evtx_json_is_windows_without_flags(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    case = REGRESSION / "registry" / "registry_set" / "registry_set_change_security_zones"
    event_file = next(case.glob("*.json"))  # three concatenated EVTX-as-JSON objects
    rule = RULES / "registry" / "registry_set" / "registry_set_change_security_zones.yml"
    code = main(["rules", "test", "--rules", str(rule), "--events", str(event_file)])
    out = alerts(capsys.readouterr().out)
    assert code == 0
    assert out, "the regression rule must fire on its own event"
    assert {a["rule_id"] for a in out} == {"45e112d0-7759-4c2a-aa36-9f8fb79d3393"}
    assert all(a["file"] == str(event_file) and a["dataset"] == "windows.event" for a in out)
    assert all(isinstance(a["event_index"], int) and a["level"] for a in out)


def test_json_lines_with_dataset_and_correlation(sigma: SimpleNamespace, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    sigma.write_docs(tmp_path, "rules", {
        "title": "Failed login", "id": FAILED, "name": "failed", "logsource": sigma.AUTH,
        "level": "low", "detection": {"sel": {"outcome": "failure"}, "condition": "sel"}}, {
        "title": "Brute force", "id": "eeeeeeee-0000-4000-8000-000000000002", "level": "high",
        "correlation": {"type": "event_count", "rules": ["failed"], "group-by": ["user"],
                        "timespan": "5m", "condition": {"gte": 2}, "generate": True}})
    lines = [{"@timestamp": f"2026-01-01T00:00:0{i}Z", "user.name": user,
              "event.outcome": outcome}
             for i, (user, outcome) in enumerate([("a", "failure"), ("b", "failure"),
                                                  ("a", "success"), ("a", "failure")])]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    code = main(["rules", "test", "--rules", str(tmp_path / "rules.yml"), "--events", str(events),
                 "--dataset", "linux.auth"])
    out = alerts(capsys.readouterr().out)
    assert code == 0
    singles = [(a["rule_id"], a["event_index"]) for a in out if a["kind"] == "rule"]
    assert singles == [(FAILED, 0), (FAILED, 1), (FAILED, 3)]
    corr = [a for a in out if a["kind"] == "event_count"]
    assert [(c["event_index"], c["event_indexes"], c["group_key"], c["value"]) for c in corr] == [
        (3, [0, 3], {"user": "a"}, 2)]


def test_events_without_dataset_and_broken_rules_exit_1(sigma: SimpleNamespace, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    sigma.write_rule(tmp_path, "ok", {"sel": {"outcome": "failure"}, "condition": "sel"},
                     id=FAILED)
    (tmp_path / "bad.yml").write_text("title: x\ndetection: [\n", encoding="utf-8")
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"event.outcome": "failure"}]), encoding="utf-8")
    code = main(["rules", "test", "--rules", str(tmp_path), "--events", str(events)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "bad.yml" in captured.err
    assert "no --dataset" in captured.err


def test_lint_reports_file_by_file(sigma: SimpleNamespace, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    sigma.write_rule(tmp_path, "dup_a", {"sel": {"x": "*a*"}, "condition": "sel"}, id=FAILED,
                     title="Same title")
    sigma.write_rule(tmp_path, "dup_b", {"sel": {"x": "b"}, "condition": "sel"}, id=FAILED,
                     title="Same title")
    (tmp_path / "broken.yml").write_text("title: [\n", encoding="utf-8")
    code = main(["rules", "lint", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{tmp_path / 'broken.yml'}\n  error: while parsing" in out
    assert (f"{tmp_path / 'dup_b.yml'}\n"
            "  high: DuplicateTitleIssue: Rule title used by multiple rules "
            "(title='Same title')\n"
            "  high: FilenameLengthIssue: Rule filename is too short or long "
            "(filename='dup_b.yml')\n"
            "  high: IdentifierCollisionIssue: Rule identifier used by multiple rules "
            f"(identifier=UUID('{FAILED}'))\n") in out
    assert ("  low: WildcardsInsteadOfContainsModifierIssue: String contains wildcards at "
            "beginning and end instead of being modified with contains modifier "
            "(detection_item=x: ['*a*'])\n") in out
    assert out.splitlines()[-1] == "2 rule(s) checked, 1 error(s), 5 issue(s)"


def test_lint_clean_rule_exits_0(sigma: SimpleNamespace, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    sigma.write_rule(tmp_path, "lnx_auth_clean_rule", {"sel": {"x|contains": "a"},
                                                       "condition": "sel"},
                     id=FAILED, status="test", description="d", author="a", date="2026-01-01",
                     level="low", falsepositives=["none"])
    assert main(["rules", "lint", str(tmp_path / "lnx_auth_clean_rule.yml")]) == 0
    assert capsys.readouterr().out.endswith("1 rule(s) checked, 0 error(s), 0 issue(s)\n")


REPO = Path(__file__).resolve().parents[2]


def test_process_output_feeds_rules_test_and_ends_with_a_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`vigil process` output carries `vigil.dataset`: `rules test` reads it, no --dataset."""
    lines = tmp_path / "auth.log"
    lines.write_text("".join(
        f"<38>Dec  6 06:00:{i:02d} host1 sshd[1]: Failed password for root from 203.0.113.9 "
        "port 22 ssh2\n" for i in range(12)))
    assert main(["process", "-c", str(REPO / "conf.d"), "--data-dir", str(tmp_path / "var"),
                 "--source", "syslog_udp", str(lines)]) == 0
    processed = tmp_path / "events.json"
    processed.write_text(capsys.readouterr().out)
    code = main(["rules", "test", "--rules", str(REPO / "rules" / "library"), "--events",
                 str(processed)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {a["title"] for a in alerts(captured.out)} == {"SSH brute force from one source"}
    summary = captured.err.strip().splitlines()
    assert summary[0].startswith("12 event(s) (linux.auth 12), ")
    assert summary[0].endswith("1 match(es) from 1 rule(s)")
    assert summary[1].split()[0] == "1" and "SSH brute force from one source" in summary[1]


def test_shipped_library_lints_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "lint", str(REPO / "rules" / "library")]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("0 error(s), 0 issue(s)"), out
