"""`lab up` from a snapshot's warm template: resumed, not booted.

Each lab VM gets fresh overlays on the template's read-only layers, its own
NVRAM, its own lab networks, and the template's saved state behind a header
carrying its own definition (``clone.resume_lab_domain``). The domain is defined
first (so ``lab down``/``gc`` find it whatever happens), then every VM resumes
at once; its clock is set and its RNG reseeded through the agent. The lab's
clean point is the template's state itself (``pointintime``: saved).

A template that does not resume (a corrupt file, another QEMU, a guest that
does not answer) is reported in one line, dropped and remade by a cold boot;
the half-made lab is removed, never reported up.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..errors import LabError, LabmgrError
from ..history import history_for
from ..hostbase import Host
from ..hypervisor import Hypervisor
from ..progress import Reporter
from ..snapshot import Snapshot
from ..spec import Environment
from ..storage import lab_dir, site_for, storage_root
from . import naming, savedstate
from .clone import ResumeInputs, resume_lab_domain
from .labparts import make_networks, reserve_lab, serve_dhcp_dns
from .guestchannel import learn_missing_keys, write_known_hosts
from .pointintime import CLEAN, SAVED, settle
from .records import LabRecord, LabServer
from .template import SERIAL_LOG, Template, drop_template, ensure_template, template_key
from .teardown import remove_lab


def instant_up(hypervisor: Hypervisor, host: Host, env: Environment, spec_path: Path, snapshot: Snapshot,
               name: str | None, virt_type: str, reporter: Reporter, drill_lock: str = "") -> LabRecord:
    key = template_key(env, snapshot, hypervisor, virt_type)
    template = ensure_template(hypervisor, host, env, spec_path, snapshot, key, virt_type, reporter)
    try:
        return _from_template(hypervisor, host, env, spec_path, snapshot, template, name, virt_type, reporter,
                              drill_lock)
    except LabmgrError as exc:
        if not isinstance(exc, _Unresumable):
            raise
        reporter.note(f"template {template.key} of snapshot {snapshot.id} did not resume ({exc}); "
                      "dropped and remade by a cold boot")
        drop_template(host, snapshot, template)
    template = ensure_template(hypervisor, host, env, spec_path, snapshot, key, virt_type, reporter)
    return _from_template(hypervisor, host, env, spec_path, snapshot, template, name, virt_type, reporter,
                          drill_lock)


class _Unresumable(LabError):
    """The template's state did not resume: the template is at fault, not the request."""


def _from_template(hypervisor: Hypervisor, host: Host, env: Environment, spec_path: Path, snapshot: Snapshot,
                   template: Template, name: str | None, virt_type: str, reporter: Reporter,
                   drill_lock: str) -> LabRecord:
    record = reserve_lab(hypervisor, env, name, hypervisor=hypervisor.uri, snapshot=snapshot.id,
                         drill_lock=drill_lock, spec=str(Path(spec_path).absolute()), virt_type=virt_type,
                         template=template.key)
    try:
        record.storage = str(lab_dir(storage_root(site_for(env, hypervisor.uri)), record.name))
        record.save()
        make_networks(hypervisor, env, record, reporter)
        serve_dhcp_dns(host, env, record, reporter)
        write_known_hosts(record, env, snapshot)
        started = time.monotonic()
        with reporter.step("clones (on the template)", total=len(env.servers)) as step:
            for server in env.servers:
                _define(hypervisor, host, env, snapshot, template, record, server)
                step.advance()
        record.timings["clone"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        with reporter.step("resume (no boot)", total=len(env.servers)) as step:
            with ThreadPoolExecutor(max_workers=len(env.servers)) as pool:
                for _ in pool.map(lambda s: _resume(hypervisor, host, record, s.name), env.servers):
                    step.advance()
        record.timings["resume"] = round(time.monotonic() - started, 2)
        learn_missing_keys(hypervisor, record, env, snapshot)
        record.state = "up"
        record.save()
    except BaseException as exc:
        record.state = "failed"
        record.error = str(exc)
        record.save()
        remove_lab(hypervisor, record.name)
        if isinstance(exc, _Unresumable):
            raise
        if isinstance(exc, LabmgrError) and not isinstance(exc, LabError):
            raise LabError(f"lab {record.name} could not be brought up and was removed: {exc}") from None
        raise
    finally:
        record.release()
    with history_for(env) as history:
        history.record_lab(record.name, env.name, snapshot.id, record.created_at, record.timings)
    return record


def _define(hypervisor: Hypervisor, host: Host, env: Environment, snapshot: Snapshot, template: Template,
            record: LabRecord, server) -> None:
    """Overlays and NVRAM in the lab's folder, the per-lab header, the persistent definition."""
    point = template.point(server.name)
    folder = record.host_directory / server.name
    host.mkdir(folder)
    host.make_traversable(folder)
    lab_server = LabServer(domain=naming.domain_name(record.name, server.name), hostname=server.hostname,
                           points=SAVED)
    record.servers[server.name] = lab_server
    record.save()
    lab_server.overlays = {target: str(folder / f"{target}.qcow2") for target in point.layers}
    nvram = None
    if point.nvram:
        nvram = folder / "nvram"
        lab_server.nvram = str(nvram)
    try:
        savedstate.check_intact(host, point)
        header = savedstate.read_header(host, point.state)
    except LabmgrError as exc:
        raise _Unresumable(one_line(str(exc))) from None
    xml = resume_lab_domain(header.xml, ResumeInputs(
        lab=record.name, environment=env.name, snapshot=snapshot.id, server=server,
        domain_name=lab_server.domain, uuid=str(uuid.uuid4()),
        overlays={t: PurePosixPath(p) for t, p in lab_server.overlays.items()}, nvram=nvram,
        networks={n: ln.name for n, ln in record.networks.items()}, directory=folder))
    # the lab's serial log starts with the template's boot (its login prompt among it)
    host.run(["cp", str(PurePosixPath(point.state).parent / SERIAL_LOG), str(folder / SERIAL_LOG)], check=False)
    clean = savedstate.write_header(host, point, header.with_xml(xml), folder / "clean.head")
    lab_server.saved[CLEAN] = clean.to_dict()
    hypervisor.define_domain(xml)
    record.save()


def _resume(hypervisor: Hypervisor, host: Host, record: LabRecord, server: str) -> None:
    lab_server = record.servers[server]
    clean = savedstate.SavedPoint.from_dict(lab_server.saved[CLEAN])
    try:
        domain = savedstate.resume(hypervisor, host, clean, lab_server.domain, lab_server.overlays,
                                   lab_server.nvram)
        if not domain.is_active():
            raise LabError(f"domain '{lab_server.domain}' stopped right after resuming")
        settle(domain, reseed=True)
    except LabmgrError as exc:
        raise _Unresumable(f"server {server}: {one_line(str(exc))}") from None


def one_line(message: str) -> str:
    """libvirt relays QEMU's log lines; the report is one line: the first and the last say it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"

