"""What the demo prints: production, the drill's lab, the closing summary, what to try next."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from ..hypervisor import connect
from ..lab import records
from ..probes import load_probes
from ..spec import Environment
from ..timeparse import format_point
from .sweep import HourVerdict
from .workdir import PLAN, PROBES, SPEC, demo_key_path
from .workload import Day

Say = Callable[[str], None]


def role(folder: Path, server: str) -> str:
    """The first comment line of the server's setup.sh says what the server is."""
    setup = folder / "servers" / server / "setup.sh"
    if setup.is_file():
        for line in setup.read_text().splitlines()[1:]:
            if line.startswith("# "):
                return line[2:].strip().rstrip(";.")
    return ""


def show_production(env: Environment, folder: Path, say: Say) -> None:
    for server in env.servers:
        nic = server.nics[0]
        say(f"    {server.name:<9} {server.hostname:<20} {str(nic.ip):<12} {nic.mac}  {role(folder, server.name)}")
    say("    The network has no host address and no forwarding: nothing reaches it from outside.")


def show_drill(summary, warnings: list[str], lab: str, say: Say) -> None:
    say("    " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.stages.items()))
    passed = sum(r.passed for r in summary.results)
    say(f"    newest hour ({summary.point}): {passed}/{len(summary.results)} probes passed")
    for result in summary.results:
        if not result.passed:
            say(f"      FAIL {result.name}: {result.detail}")
    record = records.load(lab)
    with connect(record.hypervisor) as hypervisor:
        for server in record.servers.values():
            agent = hypervisor.domain(server.domain).agent(timeout=30)
            addresses = [f"{ip} on {nic['mac']}" for nic in agent.interfaces() for ip in nic["ipv4"]
                         if not ip.startswith("127.")]
            say(f"    lab {server.domain:<20} {agent.hostname():<20} {', '.join(addresses)}  (as in production)")
    for network in record.networks.values():
        say(f"    lab network {network.name}: bridge {network.bridge}, no host address, no forwarding")
    for warning in warnings:
        say(f"    {warning}")


def summary_lines(env: Environment, network: str, day: Day, drill, verdicts: list[HourVerdict],
                  reports: list[Path]) -> list[str]:
    bad = [v for v in verdicts if not v.passed]
    sources = ", ".join(f"{s.name}/{d.name}" for s in env.servers for d in s.dumps)
    lines = [
        f"  production  {', '.join(f'{s.name} ({s.hostname})' for s in env.servers)} on {network}",
        f"  dumps       {sources}: one of each for each of {len(day.hours)} hours, "
        f"{format_point(day.hours[0])} to {format_point(day.hours[-1])}",
        f"  drill       snapshot, lab {drill.lab} (same hostnames, IPs and MACs, on its own bridges), "
        f"newest hour: {sum(r.passed for r in drill.results)}/{len(drill.results)} probes passed; "
        f"measured RTO {sum(drill.stages.values()):.0f} s, RPO {(drill.rpo_seconds or 0) / 60:.0f} min",
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


def app_view(folder: Path, env: Environment):
    """The http probe is the user's view: from the workstation, the application by its hostname."""
    return next(p for p in load_probes(folder / PROBES, env) if p.kind == "http")


def share_lines(lab: str, target: str, link: str, log: Path) -> list[str]:
    if not link:
        return [f"\nThe application could not be shared (labmgr share {lab} {target}): see {log}"]
    return [f"\nThe application, shared for 4 hours (labmgr share {lab} {target}; 'labmgr unshare {lab}' or "
            "'labmgr demo down' ends it):",
            f"  {link}        # the banner names the lab and its point; 'Sign off…' records your verdict"]


def next_steps(folder: Path, lab: str, env: Environment, hour: datetime) -> list[str]:
    view = app_view(folder, env)
    return [
        f"  labmgr lab restore {lab} --at {format_point(hour)}        # the bad hour ('--at latest' to come back)",
        f"  labmgr probe {lab} --probes {folder / PROBES}",
        f"  labmgr console {lab} {view.server}        # log in as root / labmgr; then: psql, "
        f"w3m http://{view.target}/",
        f"  labmgr ssh {lab} {view.target} -i {demo_key_path(folder)} -- hostname        # a shell at production's "
        "hostname, host key checked",
        f"  labmgr forward {lab} {view.target}:80 --listen 127.0.0.1:8080        # then browse "
        "http://127.0.0.1:8080/",
        f"  labmgr signoff {lab} --user $USER --note \"invoices checked at the newest hour\"",
        f"  labmgr report {lab} --format html -o {lab}.html",
        f"  labmgr dumps list {folder / SPEC}",
        f"  labmgr run {folder / PLAN}        # the drill again, as a nightly job would",
        f"  labmgr bisect {lab} --probes {folder / PROBES} --probe invoice-numbers --to {format_point(hour)}"
        "        # last good and first bad hour up to the bad one, in about log2(hours) + 2 restores",
        f"  labmgr probe {lab} --probes {folder / PROBES} --mutate        # how much the probes catch: each "
        "damage they should notice, the score, and what nothing notices",
        "  labmgr demo down        # removes everything the demo made (keeps the cached image)",
        "  For your own environment: copy examples/demo/ and read docs/demo.md.",
    ]
