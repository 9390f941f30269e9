"""Edits of the devices that reach outside a VM: host files, sockets, the network.

``labmgr.lab.clone`` decides which device gets which treatment; this module
only knows how to make each change in the XML, and how to list every host path
a definition names (so a lab can be checked against production's).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from lxml import etree

QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
CHAR_DEVICES = ("serial", "console", "parallel", "channel")
# Channel back-ends that stay inside the VM and libvirt: a fresh unix socket, a pty, SPICE's own.
INSIDE_CHANNELS = ("unix", "pty", "spicevmc", "spiceport", "qemu-vdagent")
# Paths a lab may share with production: the emulator binary is a program, not data;
# <resource><partition> is a cgroup name, not a file.
SHARED_PATH_ELEMENTS = ("emulator", "resource")
# ...and the host's random-number devices, which a guest only reads.
SHARED_PATHS = ("/dev/urandom", "/dev/random", "/dev/hwrng")


def own_log_files(devices: etree._Element, directory: PurePosixPath) -> dict[str, str]:
    """Give every ``<log file=...>`` of a character device a file in ``directory``.

    A console that mirrors a serial port names the same file as the port, so one
    production file maps to one lab file. Returns production path -> lab path.
    """
    moved: dict[str, str] = {}
    for tag in CHAR_DEVICES:
        for index, node in enumerate(devices.findall(tag)):
            for log in node.findall("log"):
                old = log.get("file", "")
                if old not in moved:
                    moved[old] = str(directory / f"{tag}{index}.log")
                log.set("file", moved[old])
    return moved


def log_serial_consoles(devices: etree._Element, directory: PurePosixPath) -> list[str]:
    """Every pty serial port logs to its own file in ``directory`` (appending, so a revert or a resume
    loses nothing); a console that mirrors serial port N names that port's file. Returns the files."""
    files = []
    by_port: dict[str, str] = {}
    for index, node in enumerate(devices.findall("serial")):
        target = node.find("target")
        port = target.get("port", str(index)) if target is not None else str(index)
        log = node.find("log")
        if log is None and node.get("type") == "pty":
            log = _add_log(node, directory / f"serial{index}.log")
            files.append(log.get("file"))
        if log is not None:
            by_port[port] = log.get("file", "")
    for node in devices.findall("console"):
        target = node.find("target")
        mirrored = by_port.get(target.get("port", "0") if target is not None else "0")
        if node.get("type") == "pty" and node.find("log") is None and mirrored \
                and (target is None or target.get("type", "serial") == "serial"):
            _add_log(node, PurePosixPath(mirrored))
    return files


def _add_log(node: etree._Element, path: PurePosixPath) -> etree._Element:
    log = etree.SubElement(node, "log")
    log.set("file", str(path))
    log.set("append", "on")
    return log


def drop_outside_channels(devices: etree._Element) -> list[str]:
    """Remove channels to the host's network or files (tcp, udp, file, pipe, dev, guestfwd)."""
    dropped = []
    for channel in devices.findall("channel"):
        target = channel.find("target")
        guestfwd = target is not None and target.get("type") == "guestfwd"
        if guestfwd or channel.get("type") not in INSIDE_CHANNELS:
            devices.remove(channel)
            dropped.append(f"channel type={channel.get('type')}" + (" guestfwd" if guestfwd else ""))
    return dropped


def rng_builtin(devices: etree._Element) -> list[str]:
    """An EGD random-number back-end reaches a host socket or the network: QEMU's builtin one
    replaces it. The guest keeps its virtio-rng device (model, address, rate)."""
    changed = []
    for rng in devices.findall("rng"):
        backend = rng.find("backend")
        if backend is not None and backend.get("model") == "egd":
            new = etree.Element("backend", model="builtin")
            backend.addprevious(new)
            rng.remove(backend)
            changed.append("rng egd")
    return changed


def drop_tpm_passthrough(devices: etree._Element) -> list[str]:
    """A pass-through TPM is the host's own chip; an emulated one keeps its device but gets a
    fresh state (its state directory is keyed by the domain's new UUID)."""
    dropped = []
    for tpm in devices.findall("tpm"):
        backend = tpm.find("backend")
        if backend is None or backend.get("type") != "emulator":
            devices.remove(tpm)
            dropped.append("tpm passthrough")
        else:
            for source in backend.findall("source"):
                backend.remove(source)
    return dropped


def qemu_passthrough(root: etree._Element) -> list[str]:
    """Raw QEMU arguments and overrides in ``<qemu:...>``: labmgr cannot tell where they reach."""
    return [etree.QName(node).localname for node in root
            if isinstance(node.tag, str) and etree.QName(node).namespace == QEMU_NAMESPACE]


def drop_rom_files(devices: etree._Element) -> None:
    """Option ROM files on the host: the device's own ROM is used instead."""
    for rom in devices.iter("rom"):
        rom.attrib.pop("file", None)


def host_paths(root: etree._Element) -> dict[str, str]:
    """Every absolute path the definition names, in attributes or text -> where (``devices/serial/log@file``).

    The lab's tag in ``<metadata>`` and the emulator binary are not host data and are left out.
    """
    found: dict[str, str] = {}
    tree = root.getroottree()
    for node in root.iter():
        if not isinstance(node.tag, str) or etree.QName(node).localname in SHARED_PATH_ELEMENTS:
            continue
        if any(etree.QName(a).localname in ("metadata", "resource")
               for a in node.iterancestors() if isinstance(a.tag, str)):
            continue
        where = tree.getpath(node).removeprefix("/domain/")
        for name, value in node.attrib.items():
            if value.startswith("/") and value not in SHARED_PATHS:
                found.setdefault(value, f"{where}@{name}")
        text = (node.text or "").strip()
        if text.startswith("/") and text not in SHARED_PATHS and len(node) == 0:
            found.setdefault(text, where)
    return found
