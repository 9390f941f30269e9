"""pydantic models of the environment spec (see docs/spec.md).

Field-level rules live here; rules that relate fields across the file (a NIC on
an undeclared network, a duplicate MAC) live in ``load.py`` so that their errors
can name the line of the offending value.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from ..objectives import Objectives
from ..strict import Strict
from .backups import BackupSource
from .pgbackrest import PgBackRestSource

NAME = r"^[a-z][a-z0-9-]{0,30}$"
DATABASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,63}$")
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
Accel = Literal["auto", "kvm", "tcg"]


class Network(Strict):
    name: str = Field(pattern=NAME)
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None
    access: ipaddress.IPv4Address | None = Field(
        default=None, description="the lab door's address here (default: the highest one no server and no "
                                  "gateway uses)")
    dhcp: bool = Field(default=False, description="the lab serves DHCP here: each server's production IP by MAC, "
                                                  "nothing to other MACs")
    dns: ipaddress.IPv4Address | None = Field(
        default=None, description="production's resolver address: the lab door answers DNS there with the "
                                  "environment's hostnames, and nothing else")

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, value: object) -> object:
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid IPv4 network: {exc}") from None


class Nic(Strict):
    network: str
    ip: ipaddress.IPv4Address
    mac: str

    @field_validator("mac", mode="before")
    @classmethod
    def _mac(cls, value: object) -> str:
        mac = str(value).strip().lower().replace("-", ":")
        if not MAC.match(mac):
            raise ValueError(f"'{value}' is not a MAC address like 52:54:00:12:34:56")
        if int(mac[:2], 16) & 1:
            raise ValueError(f"'{value}' is a multicast MAC address")
        return mac


DumpKind = Literal["postgres", "mariadb", "files"]


class SshAccess(Strict):
    """How to reach a production host over SSH (key auth, host key checked)."""

    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    user: str = "root"
    key: Path = Field(description="private key file")
    known_hosts: Path | None = Field(default=None, description="default: ~/.ssh/known_hosts")


class DumpSource(Strict):
    """One hourly dump of a server: a database or a directory."""

    name: str = Field(pattern=NAME)
    kind: DumpKind
    database: str | None = None          # postgres, mariadb
    path: str | None = None              # files: the directory to archive
    via: Literal["ssh", "agent"] = "agent"
    ssh: SshAccess | None = None
    dump_command: str | None = None      # replaces the default dump command (runs on production)
    restore_command: str | None = None   # replaces the default restore command (runs in the lab guest)
    backup: BackupSource | None = None   # where the team's own backups of it are (docs/sources.md)
    pgbackrest: PgBackRestSource | None = None   # a postgres source's pgBackRest stanza (docs/sources.md)

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str | None) -> str | None:
        # it becomes an argument of pg_dump/mariadb-dump and a `quoted` name in the MariaDB restore SQL
        if value is not None and not DATABASE.match(value):
            raise ValueError(f"{value!r} is not a database name labmgr accepts: letters, digits, '_', '$' "
                             "and '-' (not first), at most 64 characters")
        return value

    @field_validator("path")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(c in value for c in "\0\n\r\t")
                                  or "/../" in f"{value}/"):
            raise ValueError(f"{value!r} is not an absolute directory path (starting with '/', with no "
                             "'..' and no control characters)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> "DumpSource":
        if self.kind in ("postgres", "mariadb") and not self.database and self.pgbackrest is None:
            raise ValueError(f"a {self.kind} dump needs 'database'")
        if self.kind == "files" and not self.path:
            raise ValueError("a files dump needs 'path' (the directory to archive)")
        if self.pgbackrest is not None and (self.kind != "postgres" or self.backup is not None):
            raise ValueError("'pgbackrest' belongs to a postgres source without 'backup'")
        if self.via == "ssh" and self.ssh is None:
            raise ValueError("a dump collected via ssh needs an 'ssh' section (host, user, key)")
        if self.backup is not None and self.backup.restic is not None and self.kind != "files":
            raise ValueError("a restic repository holds files: only a 'files' dump source can name one")
        return self


class Retention(Strict):
    hourly_hours: int = Field(default=48, ge=1, description="keep every dump this many hours")
    daily_days: int = Field(default=30, ge=0, description="then the newest of each day, this many days")


class Encryption(Strict):
    recipients: list[str] = Field(min_length=1, description="age recipients (age1...)")
    identity_file: Path | None = Field(default=None, description="age identity; needed only to inject")


class DumpSettings(Strict):
    store: Path | None = Field(default=None, description="default: <state>/dumps/<environment>")
    retention: Retention = Retention()
    encryption: Encryption | None = None


class DrillSettings(Strict):
    max_age_hours: float = Field(default=192, gt=0,
                                 description="'labmgr history' warns when the last good drill is older")


class LabSshLogin(Strict):
    """How labmgr logs in to the lab copy of a server (through the lab's door), key auth."""

    user: str = "root"
    key: Path = Field(description="private key file whose public key the server's root (or user) accepts")
    port: int = Field(default=22, gt=0, lt=65536)


class LabAccess(Strict):
    """A lab login: a server without a usable guest agent is reached this way (docs/access.md)."""

    ssh: LabSshLogin


class Server(Strict):
    name: str = Field(pattern=NAME)
    hostname: str = Field(min_length=1, max_length=253)
    domain: str = Field(min_length=1, description="the production libvirt domain")
    nics: list[Nic] = Field(min_length=1)
    memory: int | None = Field(default=None, gt=0, description="MiB; default: production's")
    vcpus: int | None = Field(default=None, gt=0, description="default: production's")
    dumps: list[DumpSource] = Field(default_factory=list)
    lab_access: LabAccess | None = Field(default=None, description="a lab login, for servers without a "
                                                                   "guest agent that runs commands")


class HypervisorSite(Strict):
    """A libvirt host labmgr uses: production's (the first listed) or one labs may be placed on."""

    uri: str = Field(min_length=1, description="libvirt URI, e.g. qemu+ssh://root@kvm1.example/system")
    storage: PurePosixPath | None = Field(
        default=None, description="snapshots, overlays and restore media on that host (default: "
                                  "$LABMGR_STATE_DIR for a local hypervisor, /var/lib/labmgr for a remote one)")
    labs: bool = Field(default=True, description="labs may be placed here")

    @field_validator("storage")
    @classmethod
    def _absolute(cls, value: PurePosixPath | None) -> PurePosixPath | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"storage '{value}' is not an absolute path")
        return value


class Environment(Strict):
    name: str = Field(pattern=NAME)
    # the spec's key is ``hypervisor``: one URI, or a list of URIs and {uri, storage, labs} mappings
    hypervisors: list[HypervisorSite] = Field(default_factory=lambda: [HypervisorSite(uri="qemu:///system")],
                                              validation_alias="hypervisor", min_length=1)
    accel: Accel = "auto"
    networks: list[Network] = Field(min_length=1)
    servers: list[Server] = Field(min_length=1)
    boot_order: list[str] | None = None
    boot_timeout: float = Field(default=300, gt=0, description="seconds to wait for each guest agent")
    dumps: DumpSettings = DumpSettings()
    drills: DrillSettings = DrillSettings()
    objectives: Objectives | None = None     # recovery objectives drills are judged against (docs/drills.md)

    @field_validator("hypervisors", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return [{"uri": value}]
        if isinstance(value, list):
            return [{"uri": item} if isinstance(item, str) else item for item in value]
        return value

    @model_serializer(mode="wrap")
    def _dump_as_written(self, handler) -> dict:
        data = handler(self)            # dumped under the spec's own key, so it validates again
        if isinstance(data, dict) and "hypervisors" in data:
            data["hypervisor"] = data.pop("hypervisors")
        return data

    @property
    def hypervisor(self) -> str:
        """Production's hypervisor: the first listed."""
        return self.hypervisors[0].uri

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers)
        from ..errors import NotFoundError
        raise NotFoundError(f"environment {self.name} has no server '{name}' (servers: {known})")

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def servers_in_boot_order(self) -> list[Server]:
        order = self.boot_order or []
        first = [self.server(name) for name in order]
        return first + [s for s in self.servers if s.name not in order]
