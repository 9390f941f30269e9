"""Dump file names: ``<server>--<source>--<YYYYMMDDTHHMMSSZ>.<ext>[.age]``.

The same pattern names files in the store and files other tools leave for
``import``, so a store directory can itself be imported elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath

EXTENSIONS = {"postgres": "pgdump", "mariadb": "sql", "files": "tar"}
KINDS = {ext: kind for kind, ext in EXTENSIONS.items()}
AGE = ".age"
STAMP = "%Y%m%dT%H%M%SZ"
PATTERN = "<server>--<source>--<YYYYMMDDTHHMMSSZ>.<ext>[.age] (ext: pgdump, sql or tar)"

_NAME = re.compile(r"^(?P<server>[a-z][a-z0-9-]*?)--(?P<source>[a-z][a-z0-9-]*?)--"
                   r"(?P<stamp>\d{8}T\d{6}Z)\.(?P<ext>[a-z0-9]+)(?P<age>\.age)?$")


@dataclass(frozen=True)
class DumpName:
    server: str
    source: str
    taken_at: datetime
    ext: str
    encrypted: bool

    @property
    def kind(self) -> str | None:
        return KINDS.get(self.ext)


def stamp(taken_at: datetime) -> str:
    return taken_at.astimezone(timezone.utc).strftime(STAMP)


def file_name(server: str, source: str, kind: str, taken_at: datetime, encrypted: bool) -> str:
    return f"{server}--{source}--{stamp(taken_at)}.{EXTENSIONS[kind]}{AGE if encrypted else ''}"


def relative_path(server: str, source: str, kind: str, taken_at: datetime, encrypted: bool) -> PurePath:
    """Where a dump lives below the store root: ``<server>/<source>/<YYYY-MM-DD>/<name>``."""
    day = taken_at.astimezone(timezone.utc).strftime("%Y-%m-%d")
    return PurePath(server, source, day, file_name(server, source, kind, taken_at, encrypted))


def manifest_name(dump_name: str) -> str:
    return dump_name + ".json"


def parse(name: str) -> DumpName | str:
    """The parts of a dump file name, or the reason it is not one."""
    match = _NAME.match(name)
    if not match:
        return f"name does not match {PATTERN}"
    try:
        taken_at = datetime.strptime(match["stamp"], STAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        return f"'{match['stamp']}' is not a valid UTC time (YYYYMMDDTHHMMSSZ)"
    return DumpName(match["server"], match["source"], taken_at, match["ext"], bool(match["age"]))
