"""The damage table of 'probe --mutate': built from each probe's own settings (pure logic, no guest)."""

from __future__ import annotations

from datetime import timedelta

from labmgr.probes.damages import TABLE, damages_for
from labmgr.probes.model import (CommandProbe, FreshnessProbe, HttpProbe, IsolationProbe, SequenceGapsProbe,
                                 SqlProbe)
from labmgr.spec.model import Environment, Network, Nic, Server


def env() -> Environment:
    return Environment(name="shop", networks=[Network(name="lan", cidr="10.0.0.0/24")], servers=[
        Server(name="db", hostname="db01.shop.test", domain="shop-db",
               nics=[Nic(network="lan", ip="10.0.0.11", mac="52:54:00:00:00:11")]),
        Server(name="app", hostname="app01.shop.test", domain="shop-app",
               nics=[Nic(network="lan", ip="10.0.0.12", mac="52:54:00:00:00:12")])])


def test_every_kind_has_its_row_and_damages_name_what_the_probe_reads() -> None:
    assert set(TABLE) >= {"sequence_gaps", "freshness", "sql", "http", "tcp", "command", "checksum"}
    gaps = SequenceGapsProbe(name="g", kind="sequence_gaps", server="db", table="invoices", column="no",
                             engine="postgres", database="shop")
    built = damages_for(gaps, env())
    assert [d.description for d in built] == ["a row from the middle of invoices is deleted",
                                              "table invoices is dropped"]
    assert built[0].argv[-1].startswith("DELETE FROM invoices WHERE no = (SELECT no FROM invoices ORDER BY no")
    fresh = FreshnessProbe(name="f", kind="freshness", server="db", table="invoices", column="created_at",
                           within="2h", engine="mariadb", database="shop")
    aged = damages_for(fresh, env())[0]
    assert aged.argv[:4] == ("mariadb", "-N", "-B", "shop") and "INTERVAL 10800 SECOND" in aged.argv[-1]
    assert fresh.within == timedelta(hours=2)
    # the same drop from two probes is one damage
    assert damages_for(fresh, env())[1].key.endswith("table invoices is dropped")
    count = SqlProbe(name="c", kind="sql", server="db", query="select count(*) from public.orders",
                     engine="postgres", database="shop")
    assert [d.description for d in damages_for(count, env())][0] == "a third of the rows of public.orders are deleted"


def test_services_and_files_are_found_on_the_right_server() -> None:
    page = HttpProbe(name="p", kind="http", server="db", target="app01.shop.test", port=8080)
    (stop,) = damages_for(page, env())          # no body to match: no version to change
    assert stop.server == "app" and "sport = :8080" in stop.argv[-1]
    sessions = CommandProbe(name="s", kind="command", server="app",
                            command="grep -l 'user|s:' /var/lib/php/sessions/sess_* 2>/dev/null | wc -l")
    assert [d.description for d in damages_for(sessions, env())] == [
        "the file /var/lib/php/sessions/sess_* emptied", "the file /var/lib/php/sessions/sess_* changed"]
    assert damages_for(CommandProbe(name="n", kind="command", server="app", command="true"), env()) == []
    assert damages_for(IsolationProbe(name="i", kind="isolation", server="app"), env()) == []


def test_the_version_a_page_must_show_is_changed_where_the_application_keeps_it() -> None:
    footer = HttpProbe(name="v", kind="http", server="db", target="app01.shop.test",
                       body_matches=r"(?s)Invoices: [1-9][0-9]*, newest no\. [0-9]+.*Invoicing v1\.4\.2 on app01")
    stop, change = damages_for(footer, env())
    assert change.server == "app" and change.description == "the version 1.4.2 the page of app01.shop.test shows is changed"
    script = change.argv[-1]
    assert "grep -rIlF -e 1.4.2 /var/www" in script and 's/1\\.4\\.2/1.4.2-labmgr-mutation/g' in script
    assert "sport = :80" in script and 'systemctl restart "$unit"' in script
    # no version in what the page must show: only the stopped server
    assert [d.description for d in damages_for(HttpProbe(name="h", kind="http", server="db", target="app",
                                                         body_matches="shop ok"), env())] == [
        "the web server on app port 80 is stopped"]


def test_a_drill_plan_asks_for_mutation_and_its_score_reaches_prometheus(tmp_path) -> None:
    from datetime import datetime, timezone

    from prometheus_client.parser import text_string_to_metric_families

    from labmgr.drill.plan import load_plan
    from labmgr.notify.model import RunSummary
    from labmgr.notify.prometheus import render

    (tmp_path / "plan.yaml").write_text("environment: shop.yaml\nprobes: probes.yaml\nmutate: true\n")
    assert load_plan(tmp_path / "plan.yaml").mutate is True
    now = datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
    summary = RunSummary(environment="shop", lab="shop-1", point="2026-11-21T08:00Z", started_at=now,
                         finished_at=now, stages={}, results=[], exit_code=0,
                         mutation={"caught": 4, "applied": 5, "score": 0.8, "blind": ["x"], "restored": True})
    samples = {s.name: s.value for family in text_string_to_metric_families(render(summary))
               for s in family.samples}
    assert (samples["labmgr_mutation_caught"], samples["labmgr_mutation_applied"],
            samples["labmgr_mutation_score"]) == (4, 5, 0.8)
    summary.mutation = None
    assert "labmgr_mutation" not in render(summary)


def test_bisections_and_mutation_scores_reach_the_report(tmp_path) -> None:
    """History rows as bisect and probe --mutate write them, read back into a lab's report (no VM)."""
    from datetime import datetime, timezone

    import yaml

    from labmgr.history import history_for
    from labmgr.lab import bisect, mutate
    from labmgr.lab.evidence import evidence_for
    from labmgr.probes.damages import Damage
    from labmgr.report import render_report
    from labmgr.spec.model import DumpSettings

    shop = env().model_copy(update={"dumps": DumpSettings(store=tmp_path / "store")})
    spec = tmp_path / "shop.yaml"
    spec.write_text(yaml.safe_dump(shop.model_dump(mode="json", exclude_none=True), sort_keys=False))
    with history_for(shop) as history:
        history.record_lab("shop-1", "shop", "snap", "2026-11-21T00:00:00+00:00", {"boot": 1.0})
    t = datetime(2026, 11, 21, 3, tzinfo=timezone.utc)
    result = bisect.Bisection("shop-1", 4, 4, bisect.FOUND, t, t.replace(hour=4),
                              [bisect.Step(t.replace(hour=5), False, 3.0, ["invoice-numbers"]),
                               bisect.Step(t, True, 2.5)], restores=4)
    bisect._record(shop, result, "invoice-numbers", "2026-11-21T10:00:00Z")
    drop = Damage("k", "db", "table invoices is dropped", ("true",))
    score = mutate.MutationScore("shop-1", "2026-11-21T03:00Z", [mutate.Outcome(drop, True, ["invoice-numbers"]),
                                                                  mutate.Outcome(drop, True, [])])
    mutate._record(shop, score)
    report = render_report(evidence_for("shop-1", spec), "md", "now")
    assert "**found**; last good hour 2026-11-21T03:00Z, first bad hour 2026-11-21T04:00Z; 4 restores" in report
    assert "| 1 | 2026-11-21T05:00Z | **bad** | 3.0 | invoice-numbers |" in report
    assert "**1 of 2** damages caught" in report and "| table invoices is dropped | db | **missed** |" in report
