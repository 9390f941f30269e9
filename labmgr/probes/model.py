"""pydantic models of a probe file (see docs/probes.md), and ``load_probes``.

A probe file is a YAML mapping with one key, ``probes:``, a list of probes.
Field rules live in the models; rules that need the environment (a probe on
an unknown server, a query on a server with no database) live in
``load_probes`` so that their errors name the line of the offending value.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from .. import yamlfile
from ..errors import SpecError
from ..spec.model import Environment, Server
from ..strict import Strict
from .datamodels import NAME, ConsistencyProbe, DriftProbe, Engine, ProbeBase, nothing_to_check
from .durations import parse_duration

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
ALL_SERVERS = "all"
GATEWAY_PORTS = ("", ":22", ":443")   # a gateway must answer neither ping nor TCP
ISOLATION_SLACK = 5      # seconds an isolation probe needs beyond one connect_timeout


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'{value}' is not a valid regular expression: {exc}") from None
    return value


def _identifier(value: str) -> str:
    if not IDENT.match(value):
        raise ValueError(f"'{value}' is not a plain table or column name (letters, digits, _; "
                         "optionally schema.name)")
    return value


class Expect(Strict):
    """What a query's output must be; every given key must hold."""

    equals: str | int | float | bool | None = None
    at_least: float | None = None
    between: tuple[float, float] | None = None
    matches: str | None = None
    rows: int | None = Field(default=None, ge=0)

    _matches = field_validator("matches")(classmethod(lambda cls, v: _regex(v)))

    @model_validator(mode="after")
    def _something(self) -> "Expect":
        if all(getattr(self, key) is None for key in ("equals", "at_least", "between", "matches", "rows")):
            raise ValueError("expect needs one of equals, at_least, between, matches, rows")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between: {self.between[0]} is greater than {self.between[1]}")
        return self


class DatabaseProbe(ProbeBase):
    # engine and database may be left out when the server has exactly one such dump source
    engine: Engine | None = None
    database: str | None = None


class SqlProbe(DatabaseProbe):
    kind: Literal["sql"]
    query: str = Field(min_length=1)
    expect: Expect | None = None


class SequenceGapsProbe(DatabaseProbe):
    kind: Literal["sequence_gaps"]
    table: str
    column: str
    start: int | None = Field(default=None, description="numbers below the lowest present are missing too")
    what: str | None = Field(default=None, description="how to name the numbers: 'invoice numbers'")

    _names = field_validator("table", "column")(classmethod(lambda cls, v: _identifier(v)))


class FreshnessProbe(DatabaseProbe):
    kind: Literal["freshness"]
    table: str
    column: str
    within: timedelta

    _names = field_validator("table", "column")(classmethod(lambda cls, v: _identifier(v)))

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, value: object) -> timedelta:
        delta = parse_duration(value)
        if delta <= timedelta(0):
            raise ValueError("within must be longer than 0")
        return delta


class CommandProbe(ProbeBase):
    kind: Literal["command"]
    command: list[str] | str
    expect_exit: int | list[int] = 0
    output_matches: str | None = None

    _matches = field_validator("output_matches")(classmethod(lambda cls, v: _regex(v)))

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | str) -> list[str] | str:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("command is empty")
        return value

    @property
    def argv(self) -> list[str]:
        return ["sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)

    @property
    def exits(self) -> list[int]:
        return [self.expect_exit] if isinstance(self.expect_exit, int) else list(self.expect_exit)


class TcpProbe(ProbeBase):
    kind: Literal["tcp"]
    target: str = Field(description="a server of the spec: its name, hostname or address")
    port: int = Field(gt=0, lt=65536)
    expect: Literal["open", "closed"] = "open"


class HttpProbe(ProbeBase):
    kind: Literal["http"]
    target: str = Field(description="a server of the spec: its name, hostname or address")
    port: int = Field(default=80, gt=0, lt=65536)
    path: str = "/"
    host: str | None = Field(default=None, description="Host header; default: the target's hostname")
    status: int | list[int] = 200
    body_matches: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="header name -> regex its value matches")

    _body = field_validator("body_matches")(classmethod(lambda cls, v: _regex(v)))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"'{value}' is not a request path like /health")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for regex in value.values():
            _regex(regex)
        return value

    @property
    def statuses(self) -> list[int]:
        return [self.status] if isinstance(self.status, int) else list(self.status)


class ChecksumProbe(ProbeBase):
    kind: Literal["checksum"]
    manifest: dict[str, str] = Field(min_length=1, description="absolute path -> sha256")

    @field_validator("manifest")
    @classmethod
    def _manifest(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for path, digest in value.items():
            if not str(path).startswith("/"):
                raise ValueError(f"'{path}' is not an absolute path")
            digest = str(digest).strip().lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"the sha256 of {path} is not 64 hex digits")
            out[str(path)] = digest
        return out


class ComparePreviousProbe(DatabaseProbe):
    """A number (a query's single value) compared with the value this probe read in the same
    environment at the latest earlier point in time (kept with the results in the history)."""

    kind: Literal["compare_previous"]
    query: str = Field(min_length=1)
    max_drop: float | str = Field(default=0, description="how much smaller it may be: a number, or '5%'")
    max_growth: float | str | None = Field(default=None, description="how much larger: a number, '50%'; "
                                           "default unlimited")

    @field_validator("max_drop", "max_growth")
    @classmethod
    def _amount(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            if not re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
                raise ValueError(f"'{value}' is neither a number nor a percentage like 5%")
            return value.strip()
        if value is not None and value < 0:
            raise ValueError("must not be negative")
        return value


class IsolationProbe(ProbeBase):
    """From a lab guest: nothing outside the lab answers (production's gateways, the given
    targets), while the lab's own peers do. ``server: all`` (the default) checks from every guest."""

    kind: Literal["isolation"]
    server: str = Field(default=ALL_SERVERS, description="a server, or 'all': one check from each lab guest")
    targets: list[str] = Field(default_factory=list, description="host (ping) or host:port (TCP) outside the lab, "
                               "e.g. 10.0.0.1, 10.0.0.1:22 or db01.prod.example:5432")
    gateways: bool = Field(default=True, description="also production's gateways of the server's networks")
    peers: bool = Field(default=True, description="the lab's other servers on the same networks must answer")
    connect_timeout: int = Field(default=3, ge=1, le=60, description="seconds per address (tried concurrently)")

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            host, colon, port = str(target).rpartition(":")
            if not colon:
                host, port = str(target), "1"
            if not host or not port.isdigit() or not 0 < int(port) < 65536 \
                    or not re.fullmatch(r"[A-Za-z0-9.\-]+", host):
                raise ValueError(f"'{target}' is neither a host nor host:port (like 10.0.0.1 or 10.0.0.1:22)")
        return value

    @model_validator(mode="after")
    def _time_enough(self) -> "IsolationProbe":
        # the addresses are tried concurrently, each for connect_timeout seconds
        needed = self.connect_timeout + ISOLATION_SLACK
        if self.timeout < needed:
            raise ValueError(f"timeout {self.timeout:g} s is too short for connect_timeout "
                             f"{self.connect_timeout} s: make it at least {needed} s")
        return self


Probe = Annotated[Union[SqlProbe, SequenceGapsProbe, FreshnessProbe, CommandProbe, TcpProbe, HttpProbe,
                        ChecksumProbe, ComparePreviousProbe, IsolationProbe, ConsistencyProbe, DriftProbe],
                  Field(discriminator="kind")]
KINDS = ("sql", "sequence_gaps", "freshness", "command", "tcp", "http", "checksum", "compare_previous", "isolation",
         "consistency", "drift")
DB_KINDS = ("sql", "sequence_gaps", "freshness", "compare_previous")


class ProbeFile(Strict):
    probes: list[Probe] = Field(min_length=1)


def load_probes(path: Path | str, env: Environment) -> list[Any]:
    """Read the probe file ``path`` and check it against ``env``; any problem is one SpecError
    naming file and line."""
    path = Path(path)
    data, lines = yamlfile.read(path)
    source = yamlfile.Source(path, lines)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: expected a mapping with 'probes:' at the top level")
    _check_kinds(data, source)
    try:
        parsed = ProbeFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, source) from None
    return check_probes(parsed.probes, env, source)


def check_probes(probes: list[Any], env: Environment, source: yamlfile.Source,
                 prefix: tuple = ("probes",)) -> list[Any]:
    """The rules that need the environment; returns the probes with engine/database filled in."""
    servers = {s.name: s for s in env.servers}
    seen: dict[str, int] = {}
    out = []
    for i, probe in enumerate(probes):
        loc = (*prefix, i)
        if probe.name in seen:
            raise source.error((*loc, "name"), f"duplicate probe name '{probe.name}' "
                               f"(also at line {yamlfile.line_of(source.lines, (*prefix, seen[probe.name], 'name'))})")
        seen[probe.name] = i
        if probe.kind == "isolation" and probe.server == ALL_SERVERS:
            out += [_isolation_checks(probe.model_copy(update={"server": s.name}), env, source, loc)
                    for s in env.servers]
            continue
        server = servers.get(probe.server)
        if server is None:
            raise source.error((*loc, "server"), f"unknown server '{probe.server}' "
                               f"(servers: {', '.join(sorted(servers))})")
        if probe.kind in DB_KINDS:
            probe = _with_database(probe, server, source, loc)
        if probe.kind in ("consistency", "drift") and (problem := nothing_to_check(probe, server)):
            raise source.error((*loc, "server"), problem)
        if probe.kind in ("tcp", "http"):
            resolve_target(env, probe.target, source, (*loc, "target"))
        if probe.kind == "isolation":
            probe = _isolation_checks(probe, env, source, loc)
        out.append(probe)
    return out


def _isolation_checks(probe: Any, env: Environment, source: yamlfile.Source, loc: tuple) -> Any:
    outside, peers = isolation_addresses(probe, env)
    if not outside and not peers:
        raise source.error(loc, f"isolation probe '{probe.name}' has nothing to check from server {probe.server}: "
                           "its networks have no gateway in the spec and it has no lab peers; give 'targets:'")
    return probe


def isolation_addresses(probe: Any, env: Environment) -> tuple[dict[str, str], dict[str, str]]:
    """{address: what} that must stay silent (targets, production gateways) and {address: peer} that must
    answer (lab peers; a ``dns`` address, production's resolver, is the lab's own door: docs/access.md)."""
    server, networks = env.server(probe.server), {nic.network for nic in env.server(probe.server).nics}
    doors = {str(n.dns): n.name for n in env.networks if n.name in networks and n.dns}
    outside = {t: "outside address" for t in probe.targets if t.rsplit(":", 1)[0] not in doors}
    if probe.gateways:
        for network in env.networks:
            if network.name in networks and network.gateway is not None:
                for port in GATEWAY_PORTS:
                    outside.setdefault(f"{network.gateway}{port}", f"production gateway of {network.name}")
    peers = {f"{address}:53": f"lab DNS of {network} (the lab's door)" for address, network in doors.items()}
    if probe.peers:
        for peer in env.servers:
            if peer.name != server.name:
                for nic in peer.nics:
                    if nic.network in networks:
                        peers.setdefault(str(nic.ip), peer.name)
    return outside, peers


def _with_database(probe: Any, server: Server, source: yamlfile.Source, loc: tuple) -> Any:
    sources = [d for d in server.dumps if d.kind in ("postgres", "mariadb")]
    if probe.engine is not None:
        sources = [d for d in sources if d.kind == probe.engine]
    if not sources:
        what = f"no {probe.engine} dump source" if probe.engine else "no postgres or mariadb dump source"
        has = ", ".join(f"{d.name} ({d.kind})" for d in server.dumps) or "none"
        field = "engine" if probe.engine else "server"
        raise source.error((*loc, field), f"query on a server with no database: server {server.name} has "
                           f"{what} (its dump sources: {has})")
    engines = sorted({d.kind for d in sources})
    if probe.engine is None and len(engines) > 1:
        raise source.error((*loc, "server"), f"server {server.name} has both postgres and mariadb dumps: "
                           "say which with 'engine:'")
    engine = probe.engine or engines[0]
    database = probe.database
    if database is None:
        names = sorted({d.database for d in sources if d.kind == engine})
        if len(names) > 1:
            raise source.error(loc, f"server {server.name} has several {engine} databases "
                               f"({', '.join(names)}): say which with 'database:'")
        database = names[0]
    return probe.model_copy(update={"engine": engine, "database": database})


def resolve_target(env: Environment, target: str, source: yamlfile.Source | None = None,
                   loc: tuple = ()) -> tuple[Server, str]:
    """The spec server ``target`` names (by name, hostname or address) and the address to connect to."""
    for server in env.servers:
        ips = [str(nic.ip) for nic in server.nics]
        short = server.hostname.lower().split(".")[0]
        if target == server.name or target.lower() in (server.hostname.lower(), short):
            return server, ips[0]
        if target in ips:
            return server, target
    message = (f"'{target}' is not a server of environment {env.name} (give a server's name, hostname or "
               f"address: {', '.join(s.name for s in env.servers)}); probes only reach the lab's own servers")
    if source is None:
        raise SpecError(message)
    raise source.error(loc, message)


def _check_kinds(data: dict, source: yamlfile.Source) -> None:
    """Name an unknown or missing kind plainly (pydantic's union message lists tags cryptically)."""
    probes = data.get("probes")
    if not isinstance(probes, list):
        return
    for i, item in enumerate(probes):
        if not isinstance(item, dict):
            raise source.error(("probes", i), "a probe is a mapping with name, kind, server ...")
        if "kind" not in item:
            raise source.error(("probes", i), f"required key 'kind' is missing (kinds: {', '.join(KINDS)})")
        if item["kind"] not in KINDS:
            raise source.error(("probes", i, "kind"), f"unknown kind '{item['kind']}' (kinds: {', '.join(KINDS)})")


def _validation_error(exc: ValidationError, source: yamlfile.Source) -> SpecError:
    return yamlfile.validation_error(exc, source, _untag)


def _untag(loc: tuple) -> tuple:
    """A discriminated union puts the tag into the location: probes.0.sql.query -> probes.0.query."""
    if len(loc) >= 3 and loc[0] == "probes" and isinstance(loc[1], int) and loc[2] in KINDS:
        return loc[:2] + loc[3:]
    return loc
