"""`labmgr demo`: labmgr doing its job on a small, real production built on this machine.

The story, one timed stage at a time:

1. image       the Debian guest image of examples/demo/recipe.yaml (cached after the first run)
2. production  three linked clones of it on their own network, each set up for its role
3. workload    24 simulated hours of invoices and logins, the dumps collected after each
               hour; one hour's dump quietly misses an invoice
4. drill       `labmgr run drill.yaml`: snapshot, lab, the newest hour restored, probes
5. sweep       every hour restored in the lab and probed: the bad hour shows
6. report      the DR-day report of the lab

Then the TUI on the lab, or, without a terminal, what was shown and what to try next.
"""

from __future__ import annotations

import inspect
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..drill import load_plan, run_plan
from ..errors import LabmgrError
from ..history import now
from ..hypervisor import connect
from ..hypervisor.accel import choose_virt_type
from ..image import build_image, load_recipe
from ..lab import records
from ..lab.evidence import evidence_for
from ..probes import load_probes
from ..progress import Reporter
from ..report import render_report
from ..spec import Environment, load_environment
from ..timeparse import format_point
from . import provision
from .down import demo_down, leftovers
from .stages import Stages
from .sweep import HourVerdict, sweep
from .workdir import PLAN, PROBES, RECIPE, SPEC, copy_examples, source
from .workload import run_day, simulated_hours, workload_server

HOURS = 24
BAD_HOURS_AGO = 9        # the hour whose dump misses an invoice: good hours on both sides of it
ACCELERATION = {"qemu": "TCG, software emulation", "kvm": "KVM"}

Say = Callable[[str], None]


def run_demo(reporter: Reporter, say: Say, interactive: bool | None = None) -> None:
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    say("labmgr demo: a small production on this machine's libvirt, a day of hourly dumps, and the\n"
        "drill that proves they restore. Every stage is timed; under TCG (no KVM) expect about 15 minutes,\n"
        "a few more the first time (the guest image is built from Debian packages, then cached).")
    _remove_previous_run(reporter, say)
    stages = Stages(say)
    folder = copy_examples()
    # every file is read before anything is built: a mistake costs seconds, not a production
    env = load_environment(folder / SPEC)
    recipe = load_recipe(folder / RECIPE)
    plan = load_plan(folder / PLAN)
    load_probes(plan.probes, env)

    with stages.stage("image", f"Guest image {recipe.name}: Debian {recipe.suite} with "
                               f"{', '.join(recipe.packages[:6])}, ..."):
        image = build_image(recipe, reporter)
    stages.details["image"] = f"{'cached' if image.cached else 'built'} {image.directory.name}"

    with connect(env.hypervisor) as hypervisor:
        network = env.networks[0]
        with stages.stage("production", f"Production: {len(env.servers)} servers on their own network "
                                        f"({network.cidr}), each a linked clone of the image, set up for its role"):
            virt_type = choose_virt_type(env.accel, hypervisor)
            production = provision.production_for(env, virt_type)
            provision.build(hypervisor, production, image, folder, reporter)
        _show_production(env, folder, say)
        stages.details["production"] = f"{len(env.servers)} servers booted and set up"

        hours = simulated_hours(datetime.now(timezone.utc), HOURS)
        client = workload_server(env, folder)
        with stages.stage("workload", f"Workload: {HOURS} simulated hours of invoices and logins from "
                                      f"{client}, the dumps collected after each hour (labmgr dumps "
                                      f"collect --taken-at HOUR); one hour's dump will quietly miss an "
                                      f"invoice"):
            day = run_day(hypervisor, env, env.server(client).domain, hours, hours[-1 - BAD_HOURS_AGO], reporter)
        sources = sum(len(s.dumps) for s in env.servers)
        stages.details["workload"] = f"{HOURS} hours, {HOURS * sources} dumps"

    with stages.stage("drill", f"The drill (labmgr run {folder / PLAN}): snapshot of production, "
                               f"lab {plan.lab_name}, the newest hour restored, the probes"):
        summary, warnings = run_plan(plan, reporter)
        if summary.exit_code == 2:
            raise LabmgrError(summary.error or "the drill could not run")
        lab = summary.lab
        _show_drill(summary, warnings, lab, say)
    stages.details["drill"] = ", ".join(f"{k} {v:.1f}" for k, v in summary.stages.items())

    with stages.stage("sweep", f"The sweep: each of the {HOURS} hours restored in lab {lab} and probed "
                               f"(the newest hour passing says nothing about the others)"):
        verdicts = sweep(lab, folder / PROBES, hours, reporter, say)
    bad = [v for v in verdicts if not v.passed]
    stages.details["sweep"] = f"{len(verdicts)} hours, {len(bad)} failed"

    with stages.stage("report", f"The DR-day report of lab {lab}"):
        reports = _write_reports(lab, plan.report.directory if plan.report else folder / "reports", say)

    say("\nWhat the demo showed")
    for line in _summary(env, production, day, summary, verdicts, reports):
        say(line)
    say(f"\nStage times ({ACCELERATION.get(virt_type, virt_type)})")
    for line in stages.table():
        say(line)
    stages.save(folder / "timings.json", virt_type=virt_type, bad_hour=format_point(day.bad_hour),
                lost_invoice=day.lost_invoice)
    say("\nTry next")
    for line in _next_steps(folder, lab, env, bad[0].hour if bad else day.bad_hour):
        say(line)
    if interactive:
        _open_tui(folder / SPEC, lab, folder / PROBES, say)


def _remove_previous_run(reporter: Reporter, say: Say) -> None:
    env = load_environment(source() / SPEC)
    with connect(env.hypervisor) as hypervisor:
        found = leftovers(hypervisor)
    if found:
        say(f"\nA previous demo run is still here ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); "
            "removing it first.")
        demo_down(reporter, say)


def _role(folder: Path, server: str) -> str:
    """The first comment line of the server's setup.sh says what the server is."""
    setup = folder / "servers" / server / "setup.sh"
    if setup.is_file():
        for line in setup.read_text().splitlines()[1:]:
            if line.startswith("# "):
                return line[2:].strip().rstrip(";.")
    return ""


def _show_production(env: Environment, folder: Path, say: Say) -> None:
    for server in env.servers:
        nic = server.nics[0]
        say(f"    {server.name:<9} {server.hostname:<20} {str(nic.ip):<12} {nic.mac}  {_role(folder, server.name)}")
    say("    The network has no host address and no forwarding: nothing reaches it from outside.")


def _show_drill(summary, warnings: list[str], lab: str, say: Say) -> None:
    say("    " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.stages.items()))
    passed = sum(r.passed for r in summary.results)
    say(f"    newest hour ({summary.point}): {passed}/{len(summary.results)} probes passed")
    for result in summary.results:
        if not result.passed:
            say(f"      FAIL {result.name}: {result.detail}")
    record = records.load(lab)
    with connect(record.hypervisor) as hypervisor:
        for name, server in record.servers.items():
            agent = hypervisor.domain(server.domain).agent(timeout=30)
            addresses = [ip for nic in agent.interfaces() for ip in nic["ipv4"] if not ip.startswith("127.")]
            say(f"    lab {server.domain:<20} hostname {agent.hostname():<20} {', '.join(addresses)}  "
                f"(as in production)")
    for network in record.networks.values():
        say(f"    lab network {network.name}: bridge {network.bridge}, no host address, no forwarding")
    for warning in warnings:
        say(f"    {warning}")


def _write_reports(lab: str, directory: Path, say: Say) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    evidence = evidence_for(lab)
    written = []
    for fmt in ("md", "html"):
        path = directory / f"{lab}.{fmt}"
        path.write_text(render_report(evidence, fmt, now()))
        written.append(path)
    say(f"    {', '.join(str(p) for p in written)}: {len(evidence.restores)} points restored, "
        f"{len(evidence.runs)} probe runs")
    return written


def _summary(env: Environment, production, day, drill, verdicts: list[HourVerdict], reports: list[Path]) -> list[str]:
    bad = [v for v in verdicts if not v.passed]
    sources = ", ".join(f"{s.name}/{d.name}" for s in env.servers for d in s.dumps)
    lines = [
        f"  production  {', '.join(f'{s.name} ({s.hostname})' for s in env.servers)} on {production.network_name}",
        f"  dumps       {sources}: one of each for each of {len(day.hours)} hours, "
        f"{format_point(day.hours[0])} to {format_point(day.hours[-1])}",
        f"  drill       snapshot, lab {drill.lab} (same hostnames, IPs and MACs, on its own bridges), "
        f"newest hour: {sum(r.passed for r in drill.results)}/{len(drill.results)} probes passed",
        f"  sweep       {len(verdicts) - len(bad)} of {len(verdicts)} hours pass",
    ]
    for verdict in bad:
        lines.append(f"  BAD HOUR    {format_point(verdict.hour)}: "
                     + "; ".join(f"{r.name}: {r.detail}" for r in verdict.failed))
    caught = any(v.hour == day.bad_hour and any(r.kind == "sequence_gaps" for r in v.failed) for v in bad)
    lines.append(f"              the demo had made the dump of {format_point(day.bad_hour)} miss invoice "
                 f"{day.lost_invoice}: {'found' if caught else 'NOT found'} by the probes")
    lines.append(f"  report      {reports[-1]} (and .md)")
    return lines


def _next_steps(folder: Path, lab: str, env: Environment, hour: datetime) -> list[str]:
    # the http probe is the user's view: from the workstation, the application by its hostname
    view = next(p for p in load_probes(folder / PROBES, env) if p.kind == "http")
    console = records.load(lab).servers[view.server].domain
    return [
        f"  labmgr lab restore {lab} --at {format_point(hour)}        # the bad hour ('--at latest' to come back)",
        f"  labmgr probe {lab} --probes {folder / PROBES}",
        f"  virsh console {console}        # log in as root / labmgr; then: psql, "
        f"w3m http://{view.target}/",
        f"  labmgr signoff {lab} --user $USER --note \"invoices checked at the newest hour\"",
        f"  labmgr report {lab} --format html -o {lab}.html",
        f"  labmgr dumps list {folder / SPEC}",
        f"  labmgr run {folder / PLAN}        # the drill again, as a nightly job would",
        "  labmgr demo down        # removes everything the demo made (keeps the cached image)",
        "  For your own environment: copy examples/demo/ and read docs/demo.md.",
    ]


def _open_tui(spec: Path, lab: str, probes: Path, say: Say) -> None:
    try:
        from ..tui import run_tui
    except ImportError:
        return                          # no TUI in this installation: the summary above is the end
    wanted = {"spec": spec, "lab": lab, "probes": probes}
    accepted = inspect.signature(run_tui).parameters
    run_tui(**{k: v for k, v in wanted.items() if k in accepted})
