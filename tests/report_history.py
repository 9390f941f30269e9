"""A drill's history recorded through labmgr's own history API (no libvirt), read back by
``evidence_for`` as `labmgr report` does: for the report's tests and its browser test."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from labmgr.history import History, LabEvidence
from labmgr.lab.evidence import evidence_for
from labmgr.notify import ProbeResult, RunSummary
from labmgr.objectives import judge

LAB = "shop-7"
DAY = datetime(2026, 11, 21, tzinfo=timezone.utc)
PROBES = [("invoice-count", "db", "critical"), ("no-invoice-gaps", "db", "critical"),
          ("home-page", "app", "critical"), ("disk-free", "app", "warning")]
SPEC = {"name": "shop", "hypervisor": "qemu:///system", "networks": [{"name": "lan", "cidr": "10.20.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01", "domain": "shop-db01",
                     "nics": [{"network": "lan", "ip": "10.20.0.11", "mac": "52:54:00:aa:00:11"}]}]}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def drilled(folder: Path, *, failing_hour: int | None = None, rto: str = "30m", rpo: str = "2h",
            hours: int = 6, past_drills: int = 6) -> LabEvidence:
    """``past_drills`` earlier drills, then this lab's drill: ``hours`` hours restored and probed (a
    critical probe fails from ``failing_hour`` on), judged against the objectives; its evidence."""
    spec = folder / "shop.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "dumps": {"store": str(folder / "store")},
                                    "objectives": {"rto": rto, "rpo": rpo}}, sort_keys=False))
    started = DAY + timedelta(hours=hours + 1)
    with History(folder / "store") as history:
        for n in range(past_drills):
            moment = DAY - timedelta(days=past_drills - n)
            history.record_drill(drill(moment, f"shop-{n}", {"clone": 4, "boot": 50 + 9 * n, "inject": 20,
                                                            "restore": 300 + 40 * n, "probes": 30}, 3000, rto, rpo))
        history.record_lab(LAB, "shop", "20261121T000000Z", iso(started), {"network": 0.2, "clone": 1.1, "resume": 4.0})
        probed: list[ProbeResult] = []
        for hour in range(hours):
            point = iso(DAY + timedelta(hours=hour))
            history.record_restore(LAB, "shop", {
                "at": point, "requested": point, "dumps": {"db/shop": point, "app/sessions": point},
                "skew_seconds": 0.0, "restored_at": iso(started + timedelta(minutes=hour)),
                "seconds": {"stage": 3.0, "restore": 11.0}})
            results = [ProbeResult(name, server, "sql", severity,
                                   not (failing_hour is not None and hour >= failing_hour and name == "no-invoice-gaps")
                                   and not (name == "disk-free" and hour == 2),
                                   0.5, "missing invoice numbers: 1040-1052" if name == "no-invoice-gaps" else "ok")
                       for name, server, severity in PROBES]
            probed += results
            code = 1 if any(not r.passed and r.severity == "critical" for r in results) else 0
            history.record_probe_run(LAB, "shop", point, iso(started + timedelta(minutes=hour, seconds=30)),
                                     iso(started + timedelta(minutes=hour, seconds=40)), code, results)
        proven = [h for h in range(hours) if failing_hour is None or h < failing_hour]
        rpo_seconds = (started - DAY - timedelta(hours=proven[-1])).total_seconds() if proven else None
        history.record_drill(drill(started, LAB, {"clone": 1.3, "boot": 4.0, "inject": 18.0, "restore": 66.0,
                                                  "probes": 60.0}, rpo_seconds, rto, rpo,
                                   failed=failing_hour is not None, results=probed))
        history.add_signoff(LAB, "shop", iso(DAY + timedelta(hours=hours - 1)), "alice", "Q3 invoices present")
    return evidence_for(LAB, spec)


def drill(moment: datetime, lab: str, stages: dict, rpo_seconds: float | None, rto: str, rpo: str,
          failed: bool = False, results: list | None = None) -> RunSummary:
    from labmgr.drill.run import exit_with_objectives
    from labmgr.objectives import Objectives

    summary = RunSummary("shop", lab, iso(moment), moment, moment + timedelta(minutes=10), stages, results or [],
                         1 if failed else 0, rpo_seconds=rpo_seconds)
    summary.objectives = judge(Objectives(rto=rto, rpo=rpo).seconds(), sum(stages.values()), rpo_seconds)
    summary.exit_code = exit_with_objectives(summary.exit_code, summary.objectives)
    return summary


def row_counts(hours: int = 6) -> dict[str, list[tuple[datetime, int]]]:
    """Synthetic row counts per hour: invoices grow, then 30% vanish in the last hour."""
    invoices = [(DAY + timedelta(hours=h), 1000 + 40 * h) for h in range(hours)]
    invoices[-1] = (invoices[-1][0], int(invoices[-2][1] * 0.7))
    return {"db/shop.invoices": invoices, "db/shop.customers": [(DAY + timedelta(hours=h), 310 + h) for h in range(hours)]}
