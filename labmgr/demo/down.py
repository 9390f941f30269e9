"""`labmgr demo down`: remove every trace of the demo except the cached guest image.

Removed: the demo's labs (domains with their internal snapshots, networks,
overlays, records), production (domains, network, disks), the snapshots, the
dump store with its history, and the demo's directory (the copied examples,
reports, timings). Kept: the built image, so the next demo starts in minutes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from .. import paths
from ..hypervisor import Hypervisor, connect
from ..image import find_cached, load_recipe
from ..lab import records
from ..lab.teardown import remove_lab, tagged_objects
from ..progress import Reporter
from ..snapshot.store import environment_dir
from ..spec import load_environment
from . import production as prod
from .provision import production_for
from .workdir import RECIPE, SPEC, source, workdir

PREFIX = "lmdemo"


def _labs(hypervisor: Hypervisor) -> list[str]:
    """The demo environment's labs: by record, and by libvirt tag for labs whose record is gone."""
    named = {r.name for r in records.all_records() if r.environment == PREFIX}
    named |= {lab for lab in tagged_objects(hypervisor) if lab.startswith(PREFIX)}
    return sorted(named)


def _folders() -> list[Path]:
    return [environment_dir(PREFIX), paths.state_dir() / "dumps" / PREFIX, workdir(),
            paths.state_dir() / "production" / PREFIX, paths.state_dir() / "evidence" / PREFIX]


def leftovers(hypervisor: Hypervisor) -> list[str]:
    """What a previous demo left: its labs, production domains and network, its folders."""
    found = [f"lab {lab}" for lab in _labs(hypervisor)]
    found += [f"domain {d}" for d in hypervisor.domain_names() if d.startswith(f"{PREFIX}-")]
    found += [f"network {n}" for n in hypervisor.network_names() if n.startswith(f"{PREFIX}-")]
    return found + [str(folder) for folder in _folders() if folder.exists()]


def demo_down(reporter: Reporter, say: Callable[[str], None]) -> None:
    env = load_environment(source() / SPEC)
    with connect(env.hypervisor) as hypervisor:
        for lab in _labs(hypervisor):
            remove_lab(hypervisor, lab, reporter)
            say(f"removed lab {lab}")
        production = production_for(env, "qemu")
        with reporter.step("removing the demo's production"):
            prod.remove(hypervisor, production)
        say(f"removed production: {', '.join(production.domain_name(s) for s in production.servers)}, "
            f"network {production.network_name}, their disks")
    for folder in _folders():
        if folder.exists():
            shutil.rmtree(folder)
            say(f"removed {folder}")
    image = find_cached(load_recipe(source() / RECIPE))
    kept = f"; the built image stays cached in {image.directory}" if image else ""
    say(f"the demo is gone{kept}")
