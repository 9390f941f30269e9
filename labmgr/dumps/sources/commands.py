"""The command that produces a dump on production, per kind (see docs/collection.md).

The default commands write the dump to stdout and nothing else there:

- postgres: ``pg_dump --format=custom --no-password DB``, as the ``postgres`` OS
  user (``runuser -u postgres --`` in front) whenever the command runs as root —
  over SSH as root, and always through the guest agent, which runs as root. Over
  SSH as another user it runs as that user. It finds the server the way pg_dump
  always does: PGHOST/PGPORT in the environment, else the default socket.
- mariadb: ``mariadb-dump --single-transaction --routines --triggers --databases DB``;
  where ``mariadb-dump`` is not installed (MySQL, MariaDB before 10.5), ``mysqldump``
  with the same options. Run as root, MariaDB's unix_socket authentication lets it in.
- files: ``tar -C PATH -cf - .`` (GNU tar exits 1 when a file changed while it was
  read: that dump is refused, like any other non-zero exit).

``dump_command`` in the spec replaces the default; it is split like a shell
would split it (``shlex.split``) and run without a shell, so wrap it in
``sh -c '...'`` for pipes or redirections.
"""

from __future__ import annotations

import shlex

from ...spec.model import DumpSource
from . import DumpError

# mariadb-dump where it exists, else mysqldump: "$@" are the dump options.
MARIADB_DUMP_SCRIPT = ('if command -v mariadb-dump >/dev/null 2>&1; then exec mariadb-dump "$@"; '
                       'else exec mysqldump "$@"; fi')


def runs_as_root(source: DumpSource) -> bool:
    """Whether the dump command runs as root on production (the guest agent always does)."""
    return source.via == "agent" or (source.ssh is not None and source.ssh.user == "root")


def dump_command(source: DumpSource) -> list[str]:
    """The argv run on production for ``source``: its ``dump_command`` or the kind's default."""
    if source.dump_command is not None:
        try:
            argv = shlex.split(source.dump_command)
        except ValueError as exc:
            raise DumpError(f"dump '{source.name}': dump_command {source.dump_command!r} cannot be split "
                            f"into words: {exc}", hint="check its quotes") from None
        if not argv:
            raise DumpError(f"dump '{source.name}': dump_command is empty")
        return argv
    if source.kind == "postgres":
        argv = ["pg_dump", "--format=custom", "--no-password", str(source.database)]
        return ["runuser", "-u", "postgres", "--", *argv] if runs_as_root(source) else argv
    if source.kind == "mariadb":
        return ["sh", "-c", MARIADB_DUMP_SCRIPT, "mariadb-dump",
                "--single-transaction", "--routines", "--triggers", "--databases", str(source.database)]
    if source.kind == "files":
        return ["tar", "-C", str(source.path), "-cf", "-", "."]
    raise DumpError(f"dump '{source.name}': unknown kind '{source.kind}'")


def command_line(argv: list[str]) -> str:
    """``argv`` as one POSIX shell command line (what SSH runs, what messages show)."""
    return shlex.join(argv)


def short(argv: list[str], limit: int = 160) -> str:
    """The command for an error message: one line, cut if long (the mariadb wrapper shown as its dump)."""
    if argv[:3] == ["sh", "-c", MARIADB_DUMP_SCRIPT]:
        argv = ["mariadb-dump|mysqldump", *argv[4:]]
    line = " ".join(command_line(argv).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
