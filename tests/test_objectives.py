"""Recovery objectives: strict durations in spec and plan, judged against a drill, and said by the
history, `labmgr history`, the exit code, JUnit and the Prometheus textfile (no libvirt)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from lxml import etree

from labmgr.drill import load_plan
from labmgr.drill.run import exit_with_objectives
from labmgr.errors import SpecError
from labmgr.history import History
from labmgr.notify import ProbeResult, RunSummary, write_junit, write_textfile
from labmgr.notify.webhook import failure_payload
from labmgr.objectives import Objectives, format_duration, judge, merged, parse_duration
from labmgr.spec import load_environment

from helpers import labmgr

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)
SPEC = {"name": "shop", "hypervisor": "qemu:///system", "networks": [{"name": "lan", "cidr": "10.20.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01", "domain": "shop-db01",
                     "nics": [{"network": "lan", "ip": "10.20.0.11", "mac": "52:54:00:aa:00:11"}]}]}


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("90s", 90),
                                           ("2d", 172800), ("1d2h", 93600), (" 45M ", 2700)])
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", 30, "1.5h", "-1h", "0m", "30 min", "m", "", "1h 30m", "30m1h", None])
def test_bad_durations_are_refused(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_formatting() -> None:
    assert [format_duration(s) for s in (9.4, 252, 3600, 3900, 93784)] == ["9 s", "4m 12s", "1h", "1h 5m", "1d 2h"]


def test_judged_met_missed_and_not_measured() -> None:
    rto, rpo = judge({"rto": 1800, "rpo": 3600}, 1500, 3900)
    assert rto.met and rto.margin == 300 and rto.describe() == "RTO 25m against 30m: met, 5m to spare"
    assert not rpo.met and rpo.margin == -300 and rpo.describe() == "RPO 1h 5m against 1h: MISSED by 5m"
    (unmeasured,) = judge({"rpo": 3600}, 10, None)
    assert not unmeasured.met and unmeasured.margin is None and "not measured" in unmeasured.describe()
    assert judge({}, 10, 10) == []


def test_a_plan_overrides_the_spec_one_by_one() -> None:
    assert merged(Objectives(rto="30m", rpo="1h"), Objectives(rto="45m")) == {"rto": 2700, "rpo": 3600}
    assert merged(None, None) == {} and merged(None, Objectives(rpo="2h")) == {"rpo": 7200}


def test_exit_code_of_a_missed_objective() -> None:
    met, missed = judge({"rto": 60, "rpo": 60}, 30, 90)
    assert exit_with_objectives(0, [met]) == 0
    assert exit_with_objectives(0, [met, missed]) == 3
    assert exit_with_objectives(1, [missed]) == 1 and exit_with_objectives(2, [missed]) == 2


def test_spec_and_plan_objectives_load_and_bad_ones_name_their_line(tmp_path: Path) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "objectives": {"rto": "30m", "rpo": "1h"}}, sort_keys=False))
    assert load_environment(spec).objectives.seconds() == {"rto": 1800, "rpo": 3600}
    old = tmp_path / "old.yaml"           # a spec written before objectives existed still loads
    old.write_text(yaml.safe_dump(SPEC))
    assert load_environment(old).objectives is None
    plan = tmp_path / "plan.yaml"
    plan.write_text("environment: env.yaml\nprobes: p.yaml\nobjectives: {rto: 2h}\nreport:\n"
                    "  directory: out\n  formats: [md, pdf]\n")
    loaded = load_plan(plan)
    assert loaded.objectives.seconds() == {"rto": 7200} and loaded.report.formats == ["md", "pdf"]
    for text, where in (("objectives:\n  rto: 30m\n  rpo: 90\n", "env.yaml:"),
                        ("objectives: {rto: 1.5h}\n", "env.yaml:")):
        spec.write_text(yaml.safe_dump(SPEC, sort_keys=False) + text)
        with pytest.raises(SpecError) as caught:
            load_environment(spec)
        line = next(i for i, l in enumerate(spec.read_text().splitlines(), 1) if "rpo" in l or "1.5h" in l)
        assert f"{where}{line}: objectives." in str(caught.value) and "not a duration" in str(caught.value)
    plan.write_text("environment: env.yaml\nprobes: p.yaml\nobjectives:\n  rpo: soon\n")
    result = labmgr("run", str(plan))
    assert result.returncode == 2 and "plan.yaml:4: objectives.rpo: 'soon' is not a duration" in result.stderr


def summary(exit_code: int, rto_stages: dict, rpo: float | None, targets: dict) -> RunSummary:
    result = ProbeResult("rows", "db", "sql", "critical", exit_code != 1, 1.0, "12 rows")
    run = RunSummary("shop", "shop-1", "2026-11-21T01:00Z", T0, T0 + timedelta(minutes=20), rto_stages,
                     [result], exit_code, rpo_seconds=rpo)
    run.objectives = judge(targets, sum(rto_stages.values()), rpo)
    run.exit_code = exit_with_objectives(exit_code, run.objectives)
    return run


def test_history_junit_webhook_and_prometheus_say_met_or_missed(tmp_path: Path) -> None:
    missed = summary(0, {"clone": 60, "boot": 600, "restore": 900, "probes": 240}, 4000, {"rto": 1800, "rpo": 3600})
    assert missed.exit_code == 3 and "MISSED an objective" in missed.headline()
    with History(tmp_path) as history:
        history.record_drill(missed)
        history.record_drill(summary(0, {"boot": 60}, 100, {}))
        first, second = history.drills("shop")
    assert first.objectives == {"rto": 1800, "rpo": 3600} and first.lab == "shop-1"
    assert [(j.name, j.met, j.margin) for j in first.judged()] == [("rto", True, 0.0), ("rpo", False, -400.0)]
    assert second.judged() == []

    metrics = write_textfile(tmp_path / "shop.prom", missed).read_text()
    assert 'labmgr_objective_met{environment="shop",objective="rpo"} 0.0' in metrics
    assert 'labmgr_objective_margin_seconds{environment="shop",objective="rpo"} -400.0' in metrics
    assert 'labmgr_objective_target_seconds{environment="shop",objective="rto"} 1800.0' in metrics
    assert 'labmgr_drill_exit_code{environment="shop"} 3.0' in metrics

    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit.xsd")))
    document = etree.parse(str(write_junit(tmp_path / "junit.xml", missed)))
    schema.assertValid(document)
    suite = document.getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failure = suite.find("testcase[@name='rpo']/failure")
    assert failure.get("type") == "objective" and "MISSED by 6m 40s" in failure.get("message")

    payload = failure_payload(missed)
    assert [(o["name"], o["met"]) for o in payload["objectives"]] == [("rto", True), ("rpo", False)]


def test_labmgr_history_lists_objectives(tmp_path: Path) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "dumps": {"store": str(tmp_path / "store")}}, sort_keys=False))
    with History(tmp_path / "store") as history:
        history.record_drill(summary(0, {"boot": 60}, 4000, {"rto": 1800, "rpo": 3600}))
        history.record_drill(summary(0, {"boot": 60}, 600, {"rto": 1800, "rpo": 3600}))
    result = labmgr("history", str(spec))
    lines = result.stdout.splitlines()
    assert lines[1].endswith("RTO met, RPO MISSED by 6m 40s") and lines[2].endswith("RTO met, RPO met"), lines
    assert "RPO objective met in 1 of 2 drills that declared it; the last: RPO 10m against 1h: met" in result.stdout
