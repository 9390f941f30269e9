"""A DNS and a DHCP client for tests, run inside a network namespace of this machine.

Both speak the protocol themselves (a few struct fields), so a test sees the raw
answer: the DNS response code and addresses, the DHCP offer's address or nothing.
"""

from __future__ import annotations

import ctypes
import os
import random
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def in_namespace(namespace: str, work):
    """``work()`` run by a thread that entered ``/run/netns/<namespace>``; its result or its exception."""
    outcome: dict = {}

    def enter_and_work() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                assert ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) == 0, "setns failed"
            finally:
                os.close(fd)
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_work, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def dns_query(server: str, name: str, timeout: float = 3) -> tuple[str, list[str]]:
    """Ask ``server`` for the A records of ``name``: (response code, addresses); ("silent", []) if no answer."""
    ident = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        try:
            reply = sock.recv(4096)
        except socket.timeout:
            return "silent", []
    got_id, flags, _, answers, _, _ = struct.unpack("!HHHHHH", reply[:12])
    assert got_id == ident
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        if reply[offset] & 0xC0 == 0xC0:        # a compressed name: 2 bytes
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        kind, _, _, length = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += length
    return RCODES.get(flags & 0xF, str(flags & 0xF)), addresses


def dhcp_offer(interface: str, mac: str, timeout: float = 4) -> str | None:
    """Broadcast a DHCPDISCOVER for ``mac`` out of ``interface`` (no address needed); the address
    offered, or None if no server offers one within ``timeout``."""
    xid = random.randrange(2**32)
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    packet = (struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                          b"\0" * 4) + chaddr + b"\0" * 192 + b"\x63\x82\x53\x63"
              + bytes([53, 1, 1, 55, 3, 1, 3, 6, 255]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", 68))
        sock.settimeout(timeout)
        sock.sendto(packet, ("255.255.255.255", 67))
        while True:
            try:
                reply = sock.recv(4096)
            except socket.timeout:
                return None
            if len(reply) > 240 and reply[0] == 2 and struct.unpack("!I", reply[4:8])[0] == xid:
                return socket.inet_ntoa(reply[16:20])
