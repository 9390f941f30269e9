"""A snapshot's warm template: its lab booted once, every VM's running state saved.

The template belongs to the snapshot: its files live in the snapshot's directory
in hypervisor storage (``templates/<key>-<token>/<server>/``: the state file, the
read-only disk layers that were the VMs' overlays at that moment, the NVRAM),
its description next to the manifest (``templates/<key>.json``). So
``snapshot delete`` removes it with the snapshot, and a remote hypervisor keeps
its template in its own storage. The key is a hash of what a resumed state
depends on: the snapshot, the hypervisor and its QEMU, the accelerator, each
server's memory and vCPUs in the spec, and labmgr's clone changes
(``clone.py``); anything else is remade.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from filelock import FileLock

from ..hypervisor import Hypervisor
from ..progress import SILENT, Reporter
from ..snapshot import Snapshot
from ..spec import Environment
from . import clone, savedstate
from .coldboot import cold_up
from .teardown import remove_lab

TEMPLATES = "templates"
POINT = "template"


@dataclass
class Template:
    key: str
    environment: str
    snapshot: str
    hypervisor: str
    directory: str                  # on the hypervisor's host
    made_at: str = ""
    seconds: float = 0.0
    size: int = 0                   # bytes on disk: states, layers, NVRAM
    servers: dict[str, dict] = field(default_factory=dict)     # server -> SavedPoint

    def point(self, server: str) -> savedstate.SavedPoint:
        return savedstate.SavedPoint.from_dict(self.servers[server])


def template_key(env: Environment, snapshot: Snapshot, hypervisor: Hypervisor, virt_type: str) -> str:
    depends = {
        "snapshot": snapshot.id, "hypervisor": hypervisor.uri, "qemu": hypervisor.qemu_version(),
        "virt_type": virt_type, "servers": {s.name: [s.memory, s.vcpus] for s in env.servers},
        "clone": hashlib.sha256(Path(clone.__file__).read_bytes()).hexdigest(),
    }
    served = {n.name: [n.dhcp, str(n.dns)] for n in env.networks if n.dhcp or n.dns}
    if served:              # a guest saved without the lab's DHCP has no address: another template
        depends["served"] = served
    return hashlib.sha256(json.dumps(depends, sort_keys=True).encode()).hexdigest()[:16]


def _json(snapshot: Snapshot, key: str) -> Path:
    return snapshot.path / TEMPLATES / f"{key}.json"


def list_templates(snapshot: Snapshot) -> list[Template]:
    folder = snapshot.path / TEMPLATES
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(Template(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return found


def find_template(snapshot: Snapshot, key: str) -> Template | None:
    return next((t for t in list_templates(snapshot) if t.key == key), None)


def ensure_template(hypervisor: Hypervisor, host, env: Environment, spec_path: Path, snapshot: Snapshot,
                    key: str, virt_type: str, reporter: Reporter = SILENT) -> Template:
    """The template ``key`` of the snapshot, made by a cold boot when there is none (one maker at a time)."""
    (snapshot.path / TEMPLATES).mkdir(exist_ok=True)
    with FileLock(str(_json(snapshot, key).with_suffix(".lock"))):
        template = find_template(snapshot, key)
        if template is None:
            template = make_template(hypervisor, host, env, spec_path, snapshot, key, virt_type, reporter)
        return template


SERIAL_LOG = "serial0.log"


def make_template(hypervisor: Hypervisor, host, env: Environment, spec_path: Path, snapshot: Snapshot,
                  key: str, virt_type: str, reporter: Reporter = SILENT) -> Template:
    started = time.monotonic()
    # a new directory each time: labs resumed from a dropped template still stand on the old one
    directory = PurePosixPath(snapshot.locations()[hypervisor.uri]) / TEMPLATES / f"{key}-{secrets.token_hex(3)}"
    lab = f"tpl-{key[:12]}"
    # booted on the hypervisor the labs will resume on (placement already chose it)
    record = cold_up(hypervisor, host, env, spec_path, snapshot, lab, virt_type, reporter, for_template=True)
    template = Template(key=key, environment=env.name, snapshot=snapshot.id, hypervisor=hypervisor.uri,
                        directory=str(directory))
    try:
        with reporter.step("save running states (template)", total=len(env.servers)) as step:
            def save(server: str) -> None:
                lab_server = record.servers[server]
                folder = directory / server
                host.mkdir(folder)
                host.make_traversable(folder)
                domain = hypervisor.domain(lab_server.domain)
                logs = domain.serial_logs()
                saved = savedstate.save_point(host, domain, folder, POINT, lab_server.overlays, lab_server.nvram)
                if logs:    # the boot's serial lines: each lab resumed from it starts its own log with them
                    host.run(["cp", logs[0], str(folder / SERIAL_LOG)], check=False)
                host.chmod(saved.state, 0o644)
                # every lab resumes this state: checked against its sha256 before each resume
                template.servers[server] = replace(saved, sha256=savedstate.state_digest(host, saved.state)).to_dict()

            with ThreadPoolExecutor(max_workers=len(record.servers)) as pool:
                for _ in pool.map(save, list(record.servers)):
                    step.advance()
        remove_lab(hypervisor, lab)
    except BaseException:
        remove_lab(hypervisor, lab)
        host.remove_tree(directory)
        raise
    finally:
        record.release()
    template.size = sum(host.size(p) for p in _files(template))
    template.seconds = round(time.monotonic() - started, 2)
    template.made_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = _json(snapshot, key)
    path.with_suffix(".tmp").write_text(json.dumps(asdict(template), indent=2))
    os.replace(path.with_suffix(".tmp"), path)      # listed only when complete
    return template


def drop_template(host, snapshot: Snapshot, template: Template) -> None:
    """Forget a template first (never listed half-removed), then remove its files unless labs
    resumed from it still stand on them (``lab gc`` removes them once those labs are down)."""
    _json(snapshot, template.key).unlink(missing_ok=True)
    if not _in_use(template.directory):
        host.remove_tree(template.directory)


def _in_use(directory: str) -> bool:
    from . import records

    return any(point["state"].startswith(f"{directory}/") for record in records.all_records()
               for server in record.servers.values() for point in server.saved.values())


def warm(env: Environment, spec_path: Path, snapshot: Snapshot, reporter: Reporter = SILENT) -> Template:
    """``snapshot capture --warm``: make the snapshot's template now, on the hypervisor a lab would use."""
    from ..hosts import host_for
    from ..hypervisor import connect
    from ..hypervisor.accel import choose_virt_type
    from ..snapshot.replicate import ensure_copy
    from ..storage import storage_root
    from .placement import place

    site = place(env, snapshot, reporter)
    with connect(site.uri) as hypervisor, host_for(site.uri) as host:
        snapshot = ensure_copy(snapshot, site.uri, host, storage_root(site), reporter)
        virt_type = choose_virt_type(env.accel, hypervisor)
        key = template_key(env, snapshot, hypervisor, virt_type)
        return ensure_template(hypervisor, host, env, spec_path, snapshot, key, virt_type, reporter)


def describe_templates(snapshot: Snapshot) -> list[dict]:
    return [{"key": t.key, "hypervisor": t.hypervisor, "size": t.size, "made_at": t.made_at, "seconds": t.seconds}
            for t in list_templates(snapshot)]


def template_sizes(snapshot: Snapshot) -> int:
    return sum(t.size for t in list_templates(snapshot))



def collect_templates() -> list[str]:
    """``lab gc``: templates left half made (a directory with no description: its maker was killed)
    or whose files are gone. A template being made right now (its lock held) is left alone."""
    from filelock import Timeout

    from .. import paths
    from ..hosts import host_for
    from ..snapshot.store import list_snapshots

    removed = []
    root = paths.snapshots_dir()
    for environment in sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for snapshot in list_snapshots(environment):
            described = {t.key: t for t in list_templates(snapshot)}
            for uri, location in snapshot.locations().items():
                with host_for(uri) as host:
                    folder = PurePosixPath(location) / TEMPLATES
                    listing = host.run(["ls", "-1", "--", str(folder)], check=False)
                    names = {n for n in listing.stdout.split() if "." not in n} if listing.ok else set()
                    mine = {PurePosixPath(t.directory).name: t for t in described.values() if t.hypervisor == uri}
                    for name in sorted(names | set(mine)):
                        lock = FileLock(str(_json(snapshot, name.split("-")[0]).with_suffix(".lock")), timeout=0)
                        try:
                            with lock:
                                template = mine.get(name)
                                if template is None and not _in_use(str(folder / name)):
                                    host.remove_tree(folder / name)     # half made, or dropped and unused
                                elif template is not None and not all(host.exists(p) for p in _files(template)):
                                    drop_template(host, snapshot, template)
                                else:
                                    continue
                                removed.append(f"template {name} of snapshot {snapshot.id} ({environment})")
                        except Timeout:
                            continue
    return removed


def _files(template: Template) -> list[str]:
    return [p for point in template.servers.values()
            for p in [point["state"], *point["layers"].values(), *([point["nvram"]] if point["nvram"] else [])]]
