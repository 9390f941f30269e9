"""The save-file header of libvirt (pure logic): parse, rewrite the definition, keep the cookie."""

from __future__ import annotations

import struct

import pytest

from labmgr.errors import HypervisorError
from labmgr.hypervisor.saveimage import HEADER_SIZE, MAGIC, header_length, parse_header
from labmgr.lab.clone import ResumeInputs, resume_lab_domain
from labmgr.spec.model import Server

XML = "<domain type='qemu'><name>tpl-1-db</name><uuid>u-1</uuid></domain>"
COOKIE = b"<qemuDomainSaveCookie><cpu/></qemuDomainSaveCookie>\0"


def save_file(xml: str = XML, data_len: int = 4096, stream: bytes = b"QEVM" + b"\x07" * 100) -> bytes:
    """A save file as libvirt 9 writes it: header, XML NUL, cookie right after, zero padding, stream."""
    data = bytearray(data_len)
    body = xml.encode() + b"\0"
    data[:len(body)] = body
    data[len(body):len(body) + len(COOKIE)] = COOKIE
    words = struct.pack("<5I14I", 2, data_len, 1, 0, len(body), *([0] * 14))
    return MAGIC + words + bytes(data) + stream


def test_parse_and_rewrite_keep_the_stream_offset_and_the_cookie() -> None:
    raw = save_file()
    assert header_length(raw[:HEADER_SIZE]) == HEADER_SIZE + 4096
    header = parse_header(raw)
    assert header.xml == XML and header.cookie == COOKIE and header.was_running == 1
    longer = XML.replace("tpl-1-db", "lmi-a-db-with-a-longer-name")
    rewritten = header.with_xml(longer).to_bytes()
    assert len(rewritten) == header.stream_offset          # the stream follows at the same place
    again = parse_header(rewritten + raw[header.stream_offset:])
    assert again.xml == longer and again.cookie == COOKIE
    assert again.cookie_offset == len(longer.encode()) + 1    # the cookie follows the XML, as libvirt writes it
    assert (rewritten + raw[header.stream_offset:])[again.stream_offset:] == raw[header.stream_offset:]


def test_a_definition_too_large_or_a_file_that_is_not_a_state_is_one_error() -> None:
    header = parse_header(save_file(data_len=200))
    with pytest.raises(HypervisorError, match="does not fit"):
        header.with_xml("<domain>" + "x" * 300 + "</domain>")
    with pytest.raises(HypervisorError, match="not a libvirt saved state"):
        parse_header(b"garbage" * 20)
    with pytest.raises(HypervisorError, match="unfinished save"):
        parse_header(b"LibvirtQemudPart" + save_file()[16:])


def test_a_resumed_lab_domain_changes_identity_disks_and_networks_only() -> None:
    template = """<domain type='qemu'><name>tpl-1-db</name><uuid>u-1</uuid>
      <os><type machine='pc-i440fx-7.2'>hvm</type><nvram>/t/nvram.template</nvram></os>
      <devices>
        <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/t/db/vda.qcow2'/>
          <target dev='vda' bus='virtio'/><address type='pci' slot='0x04'/></disk>
        <interface type='network'><mac address='52:54:00:93:00:11'/><source network='tpl-1-lan'/>
          <model type='virtio'/><address type='pci' slot='0x02'/></interface>
      </devices></domain>"""
    server = Server(name="db", hostname="db01.lmi.test", domain="lmi-prod-db",
                    nics=[{"network": "lan", "ip": "10.93.0.11", "mac": "52:54:00:93:00:11"}])
    xml = resume_lab_domain(template, ResumeInputs(
        lab="lmi-a", environment="lmi-prod", snapshot="S", server=server, domain_name="lmi-a-db", uuid="u-2",
        overlays={"vda": "/l/db/vda.qcow2"}, nvram="/l/db/nvram", networks={"lan": "lmi-a-lan"}))
    assert "<name>lmi-a-db</name>" in xml and "<uuid>u-2</uuid>" in xml and "u-1" not in xml
    assert "/l/db/vda.qcow2" in xml and "/t/db/vda.qcow2" not in xml and "<nvram>/l/db/nvram</nvram>" in xml
    assert "lmi-a-lan" in xml and "tpl-1-lan" not in xml
    assert "slot=\"0x02\"" in xml and "slot=\"0x04\"" in xml and "pc-i440fx-7.2" in xml    # devices as saved
