"""`labmgr demo`: labmgr doing its job on a small, real production built on this machine.

The story, one timed stage at a time:

1. image       the Debian guest image of examples/demo/recipe.yaml (cached after the first run)
2. production  three linked clones of it on their own network, each set up for its role
3. workload    24 simulated hours (--hours) of invoices and logins, the dumps collected after
               each hour; one hour's dump quietly misses an invoice
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

from ..drill import load_plan, run_plan
from ..errors import LabmgrError
from ..history import now
from ..hypervisor import connect
from ..hypervisor.accel import choose_virt_type
from ..image import build_image, load_recipe
from ..lab.evidence import evidence_for
from ..probes import load_probes
from ..progress import Reporter
from ..report import render_report
from ..spec import load_environment
from ..timeparse import format_point
from . import narrate, provision
from .narrate import Say
from .sharing import share_in_background
from .down import demo_down, leftovers
from .stages import Stages
from .sweep import sweep
from .workdir import PLAN, PROBES, RECIPE, SPEC, copy_examples, source
from .workload import run_day, simulated_hours, workload_server

HOURS = 24               # the simulated day; `labmgr demo --hours N` makes it shorter (the tests: 3)
BAD_HOURS_AGO = 9        # the hour whose dump misses an invoice: good hours on both sides of it
ACCELERATION = {"qemu": "TCG, software emulation", "kvm": "KVM"}


def bad_hours_ago(hours: int) -> int:
    """How many hours before the newest the bad hour is: 9 in a whole day, the middle of a shorter one."""
    return min(BAD_HOURS_AGO, (hours - 1) // 2)


def run_demo(reporter: Reporter, say: Say, interactive: bool | None = None, hours_count: int = HOURS) -> None:
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
        narrate.show_production(env, folder, say)
        stages.details["production"] = f"{len(env.servers)} servers booted and set up"

        hours = simulated_hours(datetime.now(timezone.utc), hours_count)
        client = workload_server(env, folder)
        with stages.stage("workload", f"Workload: {hours_count} simulated hours of invoices and logins from "
                                      f"{client}, the dumps collected after each hour (labmgr dumps "
                                      f"collect --taken-at HOUR); one hour's dump will quietly miss an "
                                      f"invoice"):
            bad_hour = hours[-1 - bad_hours_ago(hours_count)]
            day = run_day(hypervisor, env, env.server(client).domain, hours, bad_hour, reporter)
        sources = sum(len(s.dumps) for s in env.servers)
        stages.details["workload"] = f"{hours_count} hours, {hours_count * sources} dumps"

    with stages.stage("drill", f"The drill (labmgr run {folder / PLAN}): snapshot of production, "
                               f"lab {plan.lab_name}, the newest hour restored, the probes"):
        summary, warnings = run_plan(plan, reporter)
        if summary.exit_code == 2:
            raise LabmgrError(summary.error or "the drill could not run")
        lab = summary.lab
        narrate.show_drill(summary, warnings, lab, say)
    stages.details["drill"] = ", ".join(f"{k} {v:.1f}" for k, v in summary.stages.items())

    with stages.stage("sweep", f"The sweep: each of the {hours_count} hours restored in lab {lab} and probed, "
                               f"isolation aside (the newest hour passing says nothing about the others)"):
        verdicts = sweep(lab, env, folder / PROBES, hours, reporter, say)
    bad = [v for v in verdicts if not v.passed]
    stages.details["sweep"] = f"{len(verdicts)} hours, {len(bad)} failed"

    with stages.stage("report", f"The DR-day report of lab {lab}"):
        reports = _write_reports(lab, plan.report.directory if plan.report else folder / "reports", say)

    say("\nWhat the demo showed")
    for line in narrate.summary_lines(env, production.network_name, day, summary, verdicts, reports):
        say(line)
    say(f"\nStage times ({ACCELERATION.get(virt_type, virt_type)})")
    for line in stages.table():
        say(line)
    stages.save(folder / "timings.json", virt_type=virt_type, bad_hour=format_point(day.bad_hour),
                lost_invoice=day.lost_invoice)
    say("\nTry next")
    for line in narrate.next_steps(folder, lab, env, bad[0].hour if bad else day.bad_hour):
        say(line)
    for line in narrate.share_lines(lab, *_share(folder, lab, env)):
        say(line)
    if interactive and _open_tui(folder / SPEC, lab, folder / PROBES, say):
        say("\nThe lab is still up: the commands above go on from here; 'labmgr demo down' removes it all.")


def _share(folder: Path, lab: str, env) -> tuple[str, str, Path]:
    """The application shared for 4 hours: (target, link or '', the share's log)."""
    target = f"{narrate.app_view(folder, env).target}:80"
    log = folder / "share.log"
    return target, share_in_background(lab, target, log), log


def _remove_previous_run(reporter: Reporter, say: Say) -> None:
    env = load_environment(source() / SPEC)
    with connect(env.hypervisor) as hypervisor:
        found = leftovers(hypervisor)
    if found:
        say(f"\nA previous demo run is still here ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); "
            "removing it first.")
        demo_down(reporter, say)


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


def _open_tui(spec: Path, lab: str, probes: Path, say: Say) -> bool:
    """The TUI on the lab, when this installation has one; False when it has not."""
    try:
        from ..tui import run_tui
    except ImportError:
        return False                    # the summary above is the end
    say(f"\nOpening the TUI on lab {lab} (q quits)...")
    wanted = {"spec": spec, "lab": lab, "probes": probes}
    accepted = inspect.signature(run_tui).parameters
    run_tui(**{k: v for k, v in wanted.items() if k in accepted})
    return True
