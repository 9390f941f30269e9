"""The pure logic of issue 19's evidence: entropy, profiles parsed, drift rules, profile diffs, the
engines' checker output judged, the history's hour-by-hour tables, PPM to PNG."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from lxml import etree
from PIL import Image

from labmgr.errors import SpecError
from labmgr.history import History
from labmgr.history_evidence import previous_profile, profiles_by_hour, record_profiles, row_counts
from labmgr.lab.consoles import strip_controls, to_png
from labmgr.probes import load_probes
from labmgr.probes.datachecks import judge_consistency, share
from labmgr.probes.profiling import entropy, files_argv, judge_drift, parse_files, profile_diff
from labmgr.spec.model import Environment
from labmgr.timeparse import parse_point
from labmgr.xml.devices import log_serial_consoles

H1, H2 = "2026-11-21 07:30Z", "2026-11-21 08:30Z"


def profile(rows: int = 100, files: int = 10, high: int = 0, extensions=("",), errors=()) -> dict:
    return {"tables": {"shop.invoices": {"rows": rows, "max_pk": rows, "counted": "exact"}},
            "files": {"sessions": {"path": "/var/lib/php/sessions", "files": files, "bytes": files * 100,
                                   "high_entropy": high, "extensions": {e: 1 for e in extensions}}},
            "errors": list(errors)}


def test_entropy_of_constant_text_and_random_bytes() -> None:
    assert entropy(b"") == 0.0 and entropy(b"a" * 1000) == 0.0
    assert entropy(bytes(range(256)) * 4) == pytest.approx(8.0)
    assert entropy(os.urandom(65536)) > 7.9
    assert 3 < entropy(b"user|s:5:\"alice\";cart|a:0:{}" * 100) < 5


def test_the_guest_script_agrees_with_the_python_entropy(tmp_path: Path) -> None:
    """The perl the guest runs, on this machine: counts, bytes, high-entropy files, extensions."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(os.urandom(20000))
    (tmp_path / "sub" / "b.TXT").write_text("hello\n" * 100)
    (tmp_path / "sess_1").write_text("user|s:5:\"alice\";")
    (tmp_path / "c.tar.locked").write_bytes(os.urandom(70000))
    result = subprocess.run(files_argv(str(tmp_path)), capture_output=True, text=True, check=True)
    parsed = parse_files(str(tmp_path), result.stdout)
    assert parsed == {"path": str(tmp_path), "files": 4, "bytes": 20000 + 600 + 17 + 70000, "high_entropy": 2,
                      "extensions": {"": 1, "bin": 1, "txt": 1, "locked": 1}}


def test_drift_passes_growth_and_names_a_shrunk_table_with_both_hours() -> None:
    assert judge_drift(profile(110), profile(100), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)[0]
    assert judge_drift(profile(91), profile(100), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)[0]
    passed, detail = judge_drift(profile(70), profile(100), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)
    assert not passed
    assert detail == f"table shop.invoices shrank from 100 rows at {H1} to 70 at {H2} (-30%, allowed 10%)"


def test_drift_fails_on_a_table_gone_entropy_and_new_extensions() -> None:
    gone = profile()
    gone["tables"] = {}
    passed, detail = judge_drift(gone, profile(), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)
    assert not passed and detail == f"table shop.invoices is gone at {H2} (it had 100 rows at {H1})"
    passed, detail = judge_drift(profile(high=10), profile(high=1), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)
    assert not passed and "high-entropy share 10% at " + H1 + " -> 100% at " + H2 in detail
    assert judge_drift(profile(high=3), profile(high=1), (H2, H1), max_shrink=0.1, max_entropy_jump=0.2)[0]
    passed, detail = judge_drift(profile(extensions=("", "locked")), profile(), (H2, H1), max_shrink=0.1,
                                 max_entropy_jump=0.2)
    assert not passed and detail.endswith(f"extensions at {H2} not seen at {H1}: .locked")
    assert judge_drift(profile(extensions=("", "locked")), profile(), (H2, H1), max_shrink=0.1,
                       max_entropy_jump=0.2, new_extensions=False)[0]


def test_drift_without_an_earlier_hour_passes_and_an_incomplete_profile_fails() -> None:
    passed, detail = judge_drift(profile(), None, (H2, None), max_shrink=0.1, max_entropy_jump=0.2)
    assert passed and "no earlier restored hour" in detail
    passed, detail = judge_drift(profile(errors=["postgres shop profile exited 2: boom"]), profile(), (H2, H1),
                                 max_shrink=0.1, max_entropy_jump=0.2)
    assert not passed and "boom" in detail


def test_profile_diff_marks_what_changed() -> None:
    rows = {what: (before, after, changed) for what, before, after, changed in profile_diff(profile(70), profile())}
    assert rows["table shop.invoices"] == ("100 rows, max id 100", "70 rows, max id 70", True)
    assert rows["files sessions"][2] is False
    assert profile_diff(profile(), None)[0][1] == "—"


def test_consistency_findings_name_the_relation_and_the_engines_message() -> None:
    output = ("== postgres shop\n"
              'btree index "shop.public.invoices_pkey":\n'
              "    ERROR:  invalid page in block 1 of relation base/16384/16390\n"
              'pg_dump: error: Dumping the contents of table "invoices" failed: PQgetResult() failed.\n'
              "pg_dump: detail: Error message from server: ERROR:  invalid page in block 0 of relation x\n"
              "== mariadb\n"
              "crm.customers\n"
              "Warning  : InnoDB: Index PRIMARY is marked as corrupted\n"
              "error    : Corrupt\n"
              "crm.other                                          OK\n")
    passed, detail = judge_consistency(output, 1)
    assert not passed
    assert ('btree index "shop.public.invoices_pkey": ERROR:  invalid page in block 1 of relation base/16384/16390'
            in detail)
    assert "table shop.invoices (full read): pg_dump: detail: Error message from server" in detail
    assert "table crm.customers: InnoDB: Index PRIMARY is marked as corrupted; Corrupt" in detail
    assert "crm.other" not in detail
    passed, detail = judge_consistency("== postgres shop\n== mariadb\ncrm.customers   OK\n", 0)
    assert passed and detail == ("no corruption found: postgres shop, mariadb (pg_amcheck --heapallindexed and "
                                 "a full read; mariadb-check --extended)")
    assert judge_consistency("== postgres shop\n", 0)[1].endswith("(pg_amcheck --heapallindexed and a full read)")
    passed, detail = judge_consistency("== postgres shop\nsomething odd\n", 3)
    assert not passed and "exited 3" in detail


ENV = Environment.model_validate({
    "name": "shop", "hypervisor": "qemu:///system",
    "networks": [{"name": "lan", "cidr": "10.0.0.0/24"}],
    "servers": [{"name": "db", "hostname": "db01", "domain": "shop-db",
                 "nics": [{"network": "lan", "ip": "10.0.0.11", "mac": "52:54:00:00:00:11"}],
                 "dumps": [{"name": "shop", "kind": "postgres", "database": "shop"}]},
                {"name": "web", "hostname": "web01", "domain": "shop-web",
                 "nics": [{"network": "lan", "ip": "10.0.0.12", "mac": "52:54:00:00:00:12"}]}]})


def write(tmp_path: Path, probes: list) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump({"probes": probes}))
    return path


def test_probe_files_with_the_new_kinds(tmp_path: Path) -> None:
    probes = load_probes(write(tmp_path, [{"name": "d", "kind": "drift", "server": "db", "max_shrink": "5%"},
                                          {"name": "c", "kind": "consistency", "server": "db"}]), ENV)
    assert share(probes[0].max_shrink) == 0.05 and share(probes[0].max_entropy_jump) == 0.2
    assert probes[1].timeout == 600
    with pytest.raises(SpecError, match=r"probes.yaml:\d+: .*drift probe on server web, which has no dump"):
        load_probes(write(tmp_path, [{"name": "d", "kind": "drift", "server": "web"}]), ENV)
    with pytest.raises(SpecError, match="which dumps no mariadb database"):
        load_probes(write(tmp_path, [{"name": "c", "kind": "consistency", "server": "db", "engine": "mariadb"}]), ENV)
    with pytest.raises(SpecError, match="not a percentage"):
        load_probes(write(tmp_path, [{"name": "d", "kind": "drift", "server": "db", "max_shrink": "lots"}]), ENV)


def test_history_keeps_profiles_by_hour(tmp_path: Path) -> None:
    with History(tmp_path) as history:
        for run, (point, rows) in enumerate([(H2, 70), (H1, 100), (H1, 101), ("", 5)], start=1):
            history.db.execute("INSERT INTO history_probe_runs (id, lab, environment, point, started_at, "
                               "finished_at, exit_code) VALUES (?, 'lab', 'shop', ?, '', '', 0)", (run, point))
            record_profiles(history, run, "lab", "shop", point, {"db": (profile(rows), 0.5)})
        assert row_counts(history, "shop") == {"db: shop.invoices": [(H1, 101), (H2, 70)]}
        assert [point for point, _ in profiles_by_hour(history, "shop", "lab")] == [H1, H2]
        point, earlier = previous_profile(history, "shop", "db", parse_point(H2))
        assert point == H1 and earlier["tables"]["shop.invoices"]["rows"] == 101
        assert previous_profile(history, "shop", "db", parse_point(H1)) is None


def test_every_serial_port_logs_and_its_console_shares_the_file() -> None:
    devices = etree.fromstring("<devices><serial type='pty'><target port='0'/></serial>"
                               "<serial type='pty'><target port='1'/></serial>"
                               "<console type='pty'><target type='serial' port='0'/></console></devices>")
    files = log_serial_consoles(devices, Path("/labs/l/db"))
    assert files == ["/labs/l/db/serial0.log", "/labs/l/db/serial1.log"]
    assert devices.find("console/log").get("file") == "/labs/l/db/serial0.log"
    assert devices.find("serial/log").get("append") == "on"


def test_a_ppm_screen_becomes_a_png_and_escapes_leave_the_serial_lines() -> None:
    ppm = io.BytesIO()
    Image.new("RGB", (4, 2), (0, 0, 170)).save(ppm, format="PPM")
    png, size = to_png(ppm.getvalue())
    assert size == (4, 2) and png.startswith(b"\x89PNG")
    assert strip_controls("\x1b[0;32m  OK  \x1b[0m Started\r\ndb01 login: ") == "  OK   Started\ndb01 login: "


def test_the_report_embeds_screens_and_highlights_row_count_changes(tmp_path: Path) -> None:
    from labmgr.history import LabEvidence, ProbeRun
    from labmgr.history_evidence import ConsoleEvidence
    from labmgr.report import render_report

    picture = tmp_path / "db.png"
    Image.new("RGB", (8, 4), (0, 0, 170)).save(picture, format="PNG")
    evidence = LabEvidence("shop-1", "shop", runs=[ProbeRun(7, H2, H2, H2, 1)])
    evidence.consoles = {7: [ConsoleEvidence("db", str(picture), 8, 4, "", "db01 login: <x>", "", H2),
                             ConsoleEvidence("web", "", 0, 0, "", "", "no graphics device: no screenshot", H2)]}
    evidence.row_counts = {"db: shop.invoices": [(H1, 100), (H2, 70)], "db: shop.audit": [(H1, 5)]}
    html = render_report(evidence, "html", H2)
    assert '<img src="data:image/png;base64,iVBORw0KGgo' in html
    assert "db01 login: &lt;x&gt;" in html and "no graphics device" in html
    assert '<td class="num shrank">70 (-30)</td>' in html
    assert '<td class="num gone">gone</td>' in html
    assert html.index("Row counts per hour") < html.index("<h2>Sign-offs</h2>")


def test_mutate_damages_for_the_new_kinds(tmp_path: Path) -> None:
    from labmgr.probes.damages import damages_for

    env = ENV.model_copy(deep=True)
    env.servers[0].dumps.append(env.servers[0].dumps[0].model_copy(
        update={"name": "sessions", "kind": "files", "database": None, "path": "/var/lib/php/sessions"}))
    drift, consistency = load_probes(write(tmp_path, [{"name": "d", "kind": "drift", "server": "db"},
                                                      {"name": "c", "kind": "consistency", "server": "db"}]), env)
    [encrypt] = damages_for(drift, env)
    assert encrypt.argv[-1] == "/var/lib/php/sessions" and "urandom" in encrypt.argv[2]
    assert encrypt.description == "the files under /var/lib/php/sessions replaced by random bytes and renamed .locked"
    [corrupt] = damages_for(consistency, env)
    assert corrupt.argv[-1] == "shop" and "pg_relation_filepath" in corrupt.argv[2]
    assert damages_for(drift, ENV) == []          # no files source: nothing to encrypt
