"""The shipped example conf.d: it validates, every `vigil test` case in it passes, and every
shipped pipeline is exercised by at least one of them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.daemon import REPO

from collector.cli import main
from collector.config import load_config
from collector.offline import OfflineRun
from collector.pipeline.runner import PIPELINE
from collector.pipeline.testcases import check_case
from core.events import DEAD_LETTERS

CONF = REPO / "conf.d"


def test_shipped_conf_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(CONF)]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_vigil_test_passes_every_shipped_case(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", "-c", str(CONF)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out and "FAILED" not in out


def test_every_shipped_pipeline_has_cases() -> None:
    """Each pipeline id is the one that produced (or dead-lettered) some case's output."""
    config = load_config(CONF)
    now = {"value": datetime.now(UTC)}
    offline = OfflineRun(config, CONF, clock=lambda: now["value"])
    exercised: dict[str, int] = {}
    try:
        for case in config.section("tests").values():
            now["value"] = case.received_at or datetime.now(UTC)
            for batch in offline.process_lines(case.source, [case.line()], tenant=case.tenant,
                                               peer=case.peer):
                for event in batch.events:
                    pipeline = event.get("pipeline") if batch.kind == DEAD_LETTERS else \
                        event.get(PIPELINE)
                    if pipeline is not None:
                        exercised[pipeline] = exercised.get(pipeline, 0) + 1
    finally:
        offline.close()
    missing = sorted(set(config.pipelines) - set(exercised))
    assert not missing, f"pipelines without a test case: {missing}"


def test_shipped_cases_fail_when_the_expectation_is_wrong() -> None:
    """The case checker is not vacuous on the shipped cases: changing an expected value of a
    real case makes it fail with a readable difference."""
    config = load_config(CONF)
    case = config.section("tests")["linux_sshd_failed_password_invalid_user"]
    offline = OfflineRun(config, CONF, clock=lambda: case.received_at or datetime.now(UTC))
    try:
        batches = offline.process_lines(case.source, [case.line()])
    finally:
        offline.close()
    events = [e for b in batches for e in b.events]
    wrong = case.model_copy(update={"expect": case.expect.model_copy(  # type: ignore[union-attr]
        update={"fields": {"user.name": "somebody-else"}})})
    result = check_case("wrong", wrong, events, [])
    assert result.failures == ["user.name: expected 'somebody-else', got 'webmaster'"]


def test_pipeline_files_are_the_documented_order() -> None:
    """Pipelines are tried in file-name order; the generic JSON pipeline must stay last."""
    config = load_config(CONF)
    order = list(config.pipelines)
    assert order[0] == "linux_pam" and order[-1] == "generic_json"
    files = sorted(p.name for p in CONF.glob("3*.yaml"))
    assert files == ["30-linux-auth.yaml", "30-linux-system.yaml", "31-fortinet.yaml",
                     "32-paloalto.yaml", "33-cisco-asa.yaml", "34-proxy-network.yaml",
                     "34-web.yaml", "35-windows.yaml", "36-aws-cloudtrail.yaml",
                     "37-identity.yaml", "37-saas.yaml", "38-endpoint-zeek.yaml",
                     "38-gcp-audit.yaml", "39-generic-json.yaml"]
    assert all(Path(CONF / name).read_text().startswith("# ") for name in files)
