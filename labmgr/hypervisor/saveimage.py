"""libvirt's saved-state file (``virsh save``): read and rewrite its header.

The file starts with a 92-byte header: the magic ``LibvirtQemudSave``, then
little-endian uint32 version, data_len, was_running, compressed, cookieOffset
and 14 unused words. Then ``data_len`` bytes: the domain XML, NUL, the cookie
XML at ``cookieOffset`` (NUL-terminated), zero padding. Then QEMU's migration
stream, which never names the domain.

libvirt refuses to restore a state under another name or UUID than the one in
this XML, so a lab resumed from a template needs the template's stream behind a
header that carries the lab's own definition. libvirt pads the data block (about
64 KiB) to leave room for that kind of edit; like libvirt's own
``virDomainSaveImageDefineXML``, the cookie moves to follow the new XML.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from ..errors import HypervisorError

MAGIC = b"LibvirtQemudSave"
PARTIAL_MAGIC = b"LibvirtQemudPart"     # libvirt writes this until the save is complete
_WORDS = struct.Struct("<5I14I")
HEADER_SIZE = len(MAGIC) + _WORDS.size   # 92


@dataclass(frozen=True)
class SaveHeader:
    version: int
    data_len: int
    was_running: int
    compressed: int
    cookie_offset: int
    xml: str
    cookie: bytes           # the cookie XML with its NUL, kept byte for byte

    @property
    def stream_offset(self) -> int:
        """Where QEMU's migration stream begins in the file."""
        return HEADER_SIZE + self.data_len

    def with_xml(self, xml: str) -> "SaveHeader":
        room = self.data_len - len(self.cookie) - 1
        if len(xml.encode()) > room:
            raise HypervisorError(f"the new definition ({len(xml.encode())} bytes) does not fit in the saved "
                                  f"state's header ({room} bytes)",
                                  hint="remake the template ('labmgr snapshot capture --warm')")
        # the cookie follows the XML, as libvirt itself writes it after such an edit
        offset = len(xml.encode()) + 1 if self.cookie_offset else 0
        return replace(self, xml=xml, cookie_offset=offset)

    def to_bytes(self) -> bytes:
        """The header and its data block, exactly ``stream_offset`` bytes long."""
        data = bytearray(self.data_len)
        encoded = self.xml.encode() + b"\0"
        data[:len(encoded)] = encoded
        if self.cookie_offset:
            data[self.cookie_offset:self.cookie_offset + len(self.cookie)] = self.cookie
        words = _WORDS.pack(self.version, self.data_len, self.was_running, self.compressed,
                            self.cookie_offset, *([0] * 14))
        return MAGIC + words + bytes(data)


def parse_header(head: bytes, where: str = "saved state") -> SaveHeader:
    """Parse the start of a save file (at least ``HEADER_SIZE`` bytes, ideally the whole data block)."""
    if len(head) < HEADER_SIZE or head[:len(MAGIC)] not in (MAGIC,):
        what = "an unfinished save" if head[:len(MAGIC)] == PARTIAL_MAGIC else "not a libvirt saved state"
        raise HypervisorError(f"{where} is {what}", hint="the template is remade by a cold boot")
    version, data_len, was_running, compressed, cookie_offset, *_ = _WORDS.unpack_from(head, len(MAGIC))
    data = head[HEADER_SIZE:HEADER_SIZE + data_len]
    if version != 2 or len(data) < data_len or cookie_offset >= max(data_len, 1):
        raise HypervisorError(f"{where} has a header this labmgr cannot read (version {version})",
                              hint="the template is remade by a cold boot")
    xml = data.split(b"\0", 1)[0].decode()
    cookie = b""
    if cookie_offset:
        end = data.find(b"\0", cookie_offset)
        cookie = data[cookie_offset:end + 1]
    return SaveHeader(version, data_len, was_running, compressed, cookie_offset, xml, cookie)


def header_length(head: bytes) -> int:
    """How many bytes to read to have the whole header and data block (from the first 92)."""
    if len(head) < HEADER_SIZE:
        return HEADER_SIZE
    return HEADER_SIZE + _WORDS.unpack_from(head, len(MAGIC))[1]
