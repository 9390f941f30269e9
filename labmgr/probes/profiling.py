"""A restored hour's data profile: what is read in the guest, how it is parsed, how two hours differ.

Per server: for each dumped database, each table's row count and the highest value of its
integer primary key; for each ``files`` source, file count, total bytes, how many files have
a first 64 KiB with Shannon entropy above ``HIGH_ENTROPY`` bits per byte, and the extensions.

Row counts are exact (``count(*)``) for tables the engine's statistics put under
``EXACT_LIMIT`` rows; bigger tables take the statistics' figure (PostgreSQL:
``greatest(pg_class.reltuples, pg_stat_user_tables.n_live_tup)``; MariaDB:
``information_schema.TABLES.TABLE_ROWS``), and say so (``counted: statistics``).

Everything here is pure: argv to run in the guest, parsers of its output, the drift rules.
A profile is plain JSON-able dicts (it is stored as JSON in the history):

    {"tables": {"shop.invoices": {"rows": 120, "max_pk": 120, "counted": "exact"}},
     "files": {"sessions": {"path": "/var/lib/php/sessions", "files": 12, "bytes": 4096,
                            "high_entropy": 0, "extensions": {"": 12}}},
     "errors": []}
"""

from __future__ import annotations

import math
from collections import Counter

HIGH_ENTROPY = 7.5          # bits per byte: compressed or encrypted data
HEAD_BYTES = 65536          # how much of each file is read for its entropy
EXACT_LIMIT = 1_000_000     # rows: above this the engine's statistics are used

# PostgreSQL: one query per database; count(*) and max(pk) through query_to_xml (no function to install)
PG_PROFILE = f"""
WITH t AS (
  SELECT n.nspname, c.relname, greatest(c.reltuples, coalesce(s.n_live_tup, 0))::bigint AS estimate,
         (SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1
             AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) AS pk
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
   WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg_toast%')
SELECT nspname, relname,
       CASE WHEN estimate < {EXACT_LIMIT} THEN (xpath('/row/c/text()', query_to_xml(
            format('SELECT count(*) AS c FROM %I.%I', nspname, relname), false, true, '')))[1]::text::bigint
            ELSE estimate END,
       CASE WHEN estimate < {EXACT_LIMIT} THEN 'exact' ELSE 'statistics' END,
       CASE WHEN pk IS NULL THEN '' ELSE coalesce((xpath('/row/m/text()', query_to_xml(
            format('SELECT max(%I) AS m FROM %I.%I', pk, nspname, relname), false, true, '')))[1]::text, '') END
  FROM t ORDER BY 1, 2"""

MARIADB_TABLES = """
SELECT t.TABLE_SCHEMA, t.TABLE_NAME, COALESCE(t.TABLE_ROWS, 0),
       COALESCE((SELECT MIN(c.COLUMN_NAME) FROM information_schema.COLUMNS c
                  WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.COLUMN_KEY = 'PRI'
                    AND c.DATA_TYPE IN ('tinyint', 'smallint', 'mediumint', 'int', 'bigint')
                 HAVING (SELECT COUNT(*) FROM information_schema.COLUMNS p WHERE p.TABLE_SCHEMA = t.TABLE_SCHEMA
                           AND p.TABLE_NAME = t.TABLE_NAME AND p.COLUMN_KEY = 'PRI') = 1), '')
  FROM information_schema.TABLES t
 WHERE t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_SCHEMA IN ({schemas}) ORDER BY 1, 2"""

# files: find lists them, perl (perl-base is in every Debian) reads each one's first 64 KiB
FILES_SCRIPT = r"""
$/ = "\0"; my ($n, $bytes, $high) = (0, 0, 0); my %ext;
while (my $f = <STDIN>) {
  chomp $f; my @s = lstat $f; next unless -f _; $n++; $bytes += $s[7];
  if ($f =~ m{/[^/]+\.([^./]{1,16})$}) { $ext{lc $1}++ } else { $ext{""}++ }
  open(my $h, "<:raw", $f) or next; my $buf; my $len = read($h, $buf, HEAD); close $h;
  next unless $len; my %c; $c{$_}++ for unpack("C*", $buf); my $e = 0;
  for (values %c) { my $p = $_ / $len; $e -= $p * log($p) / log(2) }
  $high++ if $e > LIMIT;
}
print "$n\t$bytes\t$high\t", join(",", map { "$_=$ext{$_}" } sort keys %ext), "\n";
""".replace("HEAD", str(HEAD_BYTES)).replace("LIMIT", str(HIGH_ENTROPY))


def entropy(data: bytes) -> float:
    """Shannon entropy of ``data`` in bits per byte (0 for nothing)."""
    if not data:
        return 0.0
    counts = Counter(data)
    return max(0.0, -sum(n / len(data) * math.log2(n / len(data)) for n in counts.values()))


def postgres_argv(database: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
            "-d", database, "-c", PG_PROFILE]


def mariadb_tables_argv(databases: list[str]) -> list[str]:
    schemas = ", ".join(f"'{d}'" for d in databases)      # names are checked by the spec (DATABASE)
    return ["mariadb", "-N", "-B", "-e", MARIADB_TABLES.format(schemas=schemas)]


def mariadb_counts_argv(listing: str) -> list[str] | None:
    """The second MariaDB query, from the first's output: exact counts under the limit, max(pk) of all."""
    parts = []
    for schema, table, estimate, pk in _rows(listing, 4):
        name = f"`{schema}`.`{table}`"
        count = "COUNT(*)" if int(estimate) < EXACT_LIMIT else str(int(estimate))
        counted = "exact" if int(estimate) < EXACT_LIMIT else "statistics"
        top = f"MAX(`{pk}`)" if pk else "NULL"
        parts.append(f"SELECT '{schema}', '{table}', {count}, '{counted}', {top} FROM {name}")
    if not parts:
        return None
    return ["mariadb", "-N", "-B", "-e", " UNION ALL ".join(parts)]


def files_argv(path: str) -> list[str]:
    return ["sh", "-c", 'find "$1" -xdev -type f -print0 | perl -e "$2"', "profile", path, FILES_SCRIPT]


def _rows(output: str, width: int) -> list[list[str]]:
    rows = []
    for line in output.splitlines():
        cells = line.split("\t")
        if len(cells) >= width:
            rows.append(cells[:width])
    return rows


def parse_postgres(database: str, output: str) -> dict[str, dict]:
    tables = {}
    for schema, table, rows, counted, top in _rows(output, 5):
        name = f"{database}.{table}" if schema == "public" else f"{database}.{schema}.{table}"
        tables[name] = {"rows": int(rows), "max_pk": _int(top), "counted": counted}
    return tables


def parse_mariadb(output: str) -> dict[str, dict]:
    return {f"{schema}.{table}": {"rows": int(rows), "max_pk": _int(top), "counted": counted}
            for schema, table, rows, counted, top in _rows(output, 5)}


def parse_files(path: str, output: str) -> dict:
    line = output.strip().splitlines()[-1] if output.strip() else ""
    cells = line.split("\t")
    if len(cells) < 3:
        raise ValueError(f"unexpected output of the files profile: {output.strip()[:200]!r}")
    extensions = {}
    for item in (cells[3] if len(cells) > 3 else "").split(","):
        if "=" in item:
            ext, _, count = item.rpartition("=")
            extensions[ext] = int(count)
    return {"path": path, "files": int(cells[0]), "bytes": int(cells[1]), "high_entropy": int(cells[2]),
            "extensions": extensions}


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def high_share(files: dict) -> float:
    return files["high_entropy"] / files["files"] if files.get("files") else 0.0


# drift ---------------------------------------------------------------------

def judge_drift(current: dict, previous: dict | None, hours: tuple[str, str | None], *, max_shrink: float,
                max_entropy_jump: float, new_extensions: bool = True) -> tuple[bool, str]:
    """Compare one server's profile at ``hours[0]`` with the one at the earlier ``hours[1]``.

    Fails when a table shrank by more than ``max_shrink`` (a share, 0.1 = 10%), disappeared, a
    files source's high-entropy share rose by more than ``max_entropy_jump`` (a share), or (with
    ``new_extensions``) a files source holds extensions the earlier hour had none of."""
    now, before = hours
    if current.get("errors"):
        return False, f"the profile at {now} is incomplete: {'; '.join(current['errors'])}"
    if previous is None:
        return True, f"no earlier restored hour to compare {now} with (profile recorded for the next)"
    problems = []
    for name, old in sorted(previous.get("tables", {}).items()):
        new = current.get("tables", {}).get(name)
        if new is None:
            problems.append(f"table {name} is gone at {now} (it had {old['rows']} rows at {before})")
        elif old["rows"] and (old["rows"] - new["rows"]) / old["rows"] > max_shrink:
            drop = (old["rows"] - new["rows"]) / old["rows"]
            problems.append(f"table {name} shrank from {old['rows']} rows at {before} to {new['rows']} at {now} "
                            f"(-{drop:.0%}, allowed {max_shrink:.0%})")
    for name, old in sorted(previous.get("files", {}).items()):
        new = current.get("files", {}).get(name)
        if new is None:
            continue
        jump = high_share(new) - high_share(old)
        if jump > max_entropy_jump:
            problems.append(f"files {name} ({new['path']}): high-entropy share {high_share(old):.0%} at {before} -> "
                            f"{high_share(new):.0%} at {now} (+{jump:.0%}, allowed +{max_entropy_jump:.0%}): "
                            "encrypted or random content")
        added = sorted(set(new.get("extensions", {})) - set(old.get("extensions", {})))
        if new_extensions and added:
            problems.append(f"files {name} ({new['path']}): extensions at {now} not seen at {before}: "
                            + ", ".join(f".{e}" if e else "(none)" for e in added))
    if problems:
        return False, "; ".join(problems)
    tables, sources = len(current.get("tables", {})), len(current.get("files", {}))
    return True, f"{tables} tables and {sources} file sources at {now} in line with {before}"


def profile_diff(current: dict | None, previous: dict | None) -> list[tuple[str, str, str, bool]]:
    """Side by side: (what, earlier, this hour, changed) for every table and files source of either."""
    current, previous = current or {}, previous or {}
    out = []
    for name in sorted(set(current.get("tables", {})) | set(previous.get("tables", {}))):
        old, new = previous.get("tables", {}).get(name), current.get("tables", {}).get(name)
        out.append((f"table {name}", _table_text(old), _table_text(new), _table_text(old) != _table_text(new)))
    for name in sorted(set(current.get("files", {})) | set(previous.get("files", {}))):
        old, new = previous.get("files", {}).get(name), current.get("files", {}).get(name)
        out.append((f"files {name}", _files_text(old), _files_text(new), _files_text(old) != _files_text(new)))
    return out


def _table_text(table: dict | None) -> str:
    if table is None:
        return "—"
    return f"{table['rows']} rows, max id {'-' if table['max_pk'] is None else table['max_pk']}"


def _files_text(files: dict | None) -> str:
    if files is None:
        return "—"
    extensions = ", ".join(f".{e}" if e else "(none)" for e in sorted(files.get("extensions", {}))) or "none"
    return (f"{files['files']} files, {files['bytes']} bytes, {high_share(files):.0%} high-entropy, "
            f"extensions {extensions}")
