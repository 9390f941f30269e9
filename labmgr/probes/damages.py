"""What ``labmgr probe --mutate`` does to a lab: the damages each probe kind should catch.

``TABLE`` is the one list (docs/probes.md shows the same): for each probe kind,
the damages made in the lab's guest, as shell run by the guest agent. A damage
is built from the probe's own settings (its table, column, file paths, port),
so it hits what the probe looks at. Kinds with nothing to break safely
(``isolation``: a lab is never connected to production to test it) have none.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .checks import sql_argv
from .model import resolve_target

# kind -> [(damage id, what it does, for the report)]
TABLE: dict[str, list[tuple[str, str]]] = {
    "sequence_gaps": [("delete-middle-row", "a row from the middle of {table} is deleted"),
                      ("drop-table", "table {table} is dropped")],
    "freshness": [("age-newest", "the newest {column} values of {table} move back past {within}"),
                  ("drop-table", "table {table} is dropped")],
    "sql": [("delete-third", "a third of the rows of {table} are deleted"),
            ("drop-table", "table {table} is dropped")],
    "compare_previous": [("delete-third", "a third of the rows of {table} are deleted"),
                         ("drop-table", "table {table} is dropped")],
    "http": [("stop-server", "the web server on {target} port {port} is stopped"),
             ("change-version", "the version {version} the page of {target} shows is changed")],
    "tcp": [("stop-server", "the service on {target} port {port} is stopped")],
    "command": [("empty-files", "{paths} emptied"),
                ("change-files", "{paths} changed")],
    "checksum": [("empty-files", "{paths} emptied"),
                 ("change-files", "{paths} changed")],
    "isolation": [],
    "drift": [("encrypt-files", "the files under {paths} replaced by random bytes and renamed .locked")],
    "consistency": [("corrupt-index", "a page of the biggest index of {database} overwritten while "
                                      "PostgreSQL is stopped")],
}
# ransomware's work, in the guest: every file random bytes (16 KiB), renamed with .locked
_ENCRYPT = ('n=0; for d in "$@"; do for f in $(find "$d" -xdev -type f); do head -c 16384 /dev/urandom > "$f" '
            '&& mv "$f" "$f.locked" && n=$((n+1)); done; done; [ "$n" -gt 0 ]')
# block 1 of the largest index (a btree's first data page) overwritten while the server is stopped
_CORRUPT_INDEX = ('db="$1"; f=$(runuser -u postgres -- psql -XAtd "$db" -c "SELECT current_setting(\'data_directory\') '
                  '|| \'/\' || pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = '
                  'c.relnamespace WHERE c.relkind = \'i\' AND n.nspname NOT IN (\'pg_catalog\', '
                  '\'information_schema\') AND n.nspname NOT LIKE \'pg_toast%\' ORDER BY '
                  'pg_relation_size(c.oid) DESC LIMIT 1") && [ -n "$f" ] && systemctl stop postgresql && '
                  'dd if=/dev/urandom of="$f" bs=8192 seek=1 count=1 conv=notrunc 2>/dev/null; '
                  'systemctl start postgresql && for i in $(seq 60); do pg_isready -q && exit 0; sleep 1; done; exit 1')
CHANGE_LINE = "labmgr mutation test: changed"
VERSION_SUFFIX = "-labmgr-mutation"
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_FROM = re.compile(r"\bfrom\s+([A-Za-z_][A-Za-z0-9_.]*)", re.IGNORECASE)
_PATH = re.compile(r"(?<![\w$])(/[A-Za-z0-9_.*?/-]+)")


@dataclass(frozen=True)
class Damage:
    key: str            # identical damages of several probes are applied once
    server: str         # the spec server whose lab guest is damaged
    description: str
    argv: tuple[str, ...]


def damages_for(probe, env) -> list[Damage]:
    """The damages that ``probe``'s kind should catch, built for this probe; [] when none apply."""
    made = []
    for damage_id, text in TABLE.get(probe.kind, []):
        built = _build(damage_id, probe, env)
        if built is None:
            continue
        server, argv, fields = built
        description = text.format(**fields)
        made.append(Damage(f"{server}:{damage_id}:{description}", server, description, tuple(argv)))
    return made


def _build(damage_id: str, probe, env):
    if damage_id in ("encrypt-files", "corrupt-index"):
        return _data_damage(damage_id, probe, env)
    if damage_id in ("delete-middle-row", "delete-third", "drop-table", "age-newest"):
        table = _table(probe)
        if table is None:
            return None
        fields = {"table": table, "column": getattr(probe, "column", ""), "within": getattr(probe, "within", "")}
        return probe.server, _sql_damage(damage_id, probe, table), fields
    if damage_id == "stop-server":
        return _target_server(env, probe), ["sh", "-c", _STOP.format(port=int(probe.port))], \
            {"target": probe.target, "port": probe.port}
    if damage_id == "change-version":
        version = _version(probe)
        if version is None:
            return None
        # a version is digits and dots only: safe in the shell and in sed as it is
        script = _CHANGE_VERSION.format(version=version, pattern=version.replace(".", "\\."),
                                        changed=version + VERSION_SUFFIX, roots=" ".join(_APP_ROOTS),
                                        port=int(probe.port))
        return _target_server(env, probe), ["sh", "-c", script], {"target": probe.target, "version": version}
    paths = _paths(probe)
    if not paths:
        return None
    shown = ", ".join(paths) if len(paths) > 1 else f"the file {paths[0]}"
    action = ': > "$f"' if damage_id == "empty-files" else f'echo {shlex.quote(CHANGE_LINE)} >> "$f"'
    script = f'n=0; for f in {" ".join(paths)}; do [ -f "$f" ] && {action} && n=$((n+1)); done; [ "$n" -gt 0 ]'
    return probe.server, ["sh", "-c", script], {"paths": shown}


def _data_damage(damage_id: str, probe, env):
    dumps = env.server(probe.server).dumps
    if damage_id == "encrypt-files":
        found = [d.path for d in dumps if d.kind == "files"]
        return (probe.server, ["sh", "-c", _ENCRYPT, "encrypt", *found], {"paths": ", ".join(found)}) if found \
            else None
    found = [d.database for d in dumps if d.kind == "postgres" and getattr(probe, "engine", None) in (None, "postgres")]
    return (probe.server, ["sh", "-c", _CORRUPT_INDEX, "corrupt", found[0]], {"database": found[0]}) if found \
        else None


def _target_server(env, probe) -> str:
    """The spec server an http or tcp probe's ``target`` names: the one whose service is damaged."""
    server, _ = resolve_target(env, probe.target)
    return server.name


def _table(probe) -> str | None:
    if hasattr(probe, "table"):
        return probe.table
    found = _FROM.search(getattr(probe, "query", ""))
    return found.group(1) if found else None


def _sql_damage(damage_id: str, probe, table: str) -> list[str]:
    postgres = probe.engine == "postgres"
    if damage_id == "drop-table":
        query = f"DROP TABLE {table}" + (" CASCADE" if postgres else "")
    elif damage_id == "delete-middle-row":
        column = probe.column
        inner = f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET (SELECT count(*) / 2 FROM {table})"
        query = f"DELETE FROM {table} WHERE {column} = ({inner})" if postgres else \
            _mariadb_offset(table, f"DELETE FROM {table} WHERE {column} = (SELECT c FROM (SELECT {column} AS c "
                                   f"FROM {table} ORDER BY {column} LIMIT 1 OFFSET @N) x)")
    elif damage_id == "delete-third":
        query = (f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() OVER () AS n "
                 f"FROM {table}) x WHERE n % 3 = 0)") if postgres else \
            f"DELETE FROM {table} WHERE RAND() < 0.34"
    else:   # age-newest: every value moves back, so the newest is older than `within` (plus an hour)
        seconds = int(probe.within.total_seconds()) + 3600
        query = (f"UPDATE {table} SET {probe.column} = {probe.column} - interval '{seconds} seconds'" if postgres
                 else f"UPDATE {table} SET {probe.column} = {probe.column} - INTERVAL {seconds} SECOND")
    return sql_argv(probe.engine, probe.database, query)


def _mariadb_offset(table: str, statement: str) -> str:
    """MariaDB takes no expression in OFFSET: count first, then a prepared statement."""
    return (f"SELECT count(*) DIV 2 INTO @n FROM {table}; SET @q = REPLACE({_quote(statement)}, '@N', @n); "
            "PREPARE s FROM @q; EXECUTE s")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _paths(probe) -> list[str]:
    if probe.kind == "checksum":
        return sorted(probe.manifest)
    command = probe.command if isinstance(probe.command, str) else " ".join(probe.command)
    return sorted({p for p in _PATH.findall(command) if not p.startswith(("/dev/", "/proc/", "/sys/"))})


# $pid listening on the port and $unit, the systemd service it runs in (empty when none)
_LISTENER = ("pid=$(ss -ltnpH 'sport = :{port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); "
             "unit=$([ -n \"$pid\" ] && sed -n 's|^0::.*/\\([^/]*\\.service\\)$|\\1|p' /proc/$pid/cgroup); ")
# the service listening on the port, stopped through its systemd unit (a kill alone is restarted)
_STOP = _LISTENER + ("[ -n \"$pid\" ] || exit 1; "
                     "if [ -n \"$unit\" ]; then systemctl stop \"$unit\"; else kill \"$pid\"; fi")


def _version(probe) -> str | None:
    """The version the page must show, read from ``body_matches``: a dotted number such as
    ``v1\\.4\\.2`` (escapes undone); None when the probe names none."""
    literal = re.sub(r"\\(.)", r"\1", probe.body_matches or "")
    found = _VERSION.findall(literal)
    return max(found, key=len) if found else None


# where an application keeps the version its pages show (files under /etc too: a unit's ExecStart)
_APP_ROOTS = ("/var/www", "/srv", "/opt", "/usr/local", "/etc")
# the version changed in every text file that holds it, then the listener's unit restarted: a
# server that read its page or config when it started shows the change too
_CHANGE_VERSION = ('files=$(grep -rIlF -e {version} {roots} 2>/dev/null); [ -n "$files" ] || exit 1; '
                   'for f in $files; do sed -i "s/{pattern}/{changed}/g" "$f"; done; '
                   + _LISTENER + '[ -z "$unit" ] || systemctl restart "$unit"')
