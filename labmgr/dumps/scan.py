"""YARA rules over the content of stored dumps: ``labmgr dumps scan``.

Rules are compiled with yara-x. Each dump's content streams through
``content.members`` (tar members, SQL text; age dumps decrypted through a pipe)
and is scanned in windows of ``WINDOW`` bytes that overlap by ``OVERLAP``, so a
string that straddles two windows is still found and no member is held whole
in memory. (Rules whose conditions depend on a file's size or absolute offsets
see a window, not the whole member.)

The result per dump goes into the catalog (``scans.ScanBook``) keyed by the
dump's sha256 and the rules' sha256: a dump already scanned with the same rules
is not scanned again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..progress import SILENT, Reporter
from ..spec.model import Environment
from . import content
from .errors import DumpError
from .record import DumpRecord
from .scans import Finding, ScanBook, ScanResult
from .store import store_for

WINDOW = 4 << 20
OVERLAP = 4096      # longer than any string a rule is expected to look for


@dataclass
class Rules:
    path: Path
    sha256: str
    compiled: object


@dataclass
class ScanSummary:
    rules: Rules
    results: list[tuple[DumpRecord, ScanResult]] = field(default_factory=list)
    scanned: int = 0           # dumps read this time
    cached: int = 0            # dumps already scanned with these rules
    bytes: int = 0             # plaintext bytes read this time
    seconds: float = 0.0

    @property
    def matched(self) -> list[tuple[DumpRecord, ScanResult]]:
        return [(r, s) for r, s in self.results if s.findings]

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def load_rules(path: Path) -> Rules:
    """Compile a YARA rules file; a syntax error names the file and yara-x's line."""
    import yara_x

    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DumpError(f"cannot read the rules file {path}: {exc.strerror}") from None
    try:
        compiled = yara_x.compile(text.decode())
    except (yara_x.CompileError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()
        where = next((line.strip() for line in first if "-->" in line), "")
        raise DumpError(f"{path}: not valid YARA rules: {first[0] if first else exc} {where}".strip(),
                        hint="check the rule with 'yr check' or against the YARA-X documentation") from None
    return Rules(path, hashlib.sha256(text).hexdigest(), compiled)


def scan_dumps(env: Environment, rules_file: Path, since: datetime | None = None,
               until: datetime | None = None, reporter: Reporter = SILENT) -> ScanSummary:
    """Scan every dump of ``env`` taken in [since, until] (oldest first); results into the catalog."""
    rules = load_rules(rules_file)
    identity = env.dumps.encryption.identity_file if env.dumps.encryption else None
    backups = {(server.name, s.name): s.backup for server in env.servers for s in server.dumps}
    summary = ScanSummary(rules)
    with store_for(env) as store:
        book = ScanBook(store.catalog.db)
        records = list(reversed(store.catalog.list(since=since, until=until)))
        with reporter.step(f"scan {len(records)} dumps", total=len(records) or None) as step:
            for record in records:
                key = record.identity_key
                known = book.get(key, rules.sha256)
                if known is None:
                    known = scan_one(record, rules, identity, backups.get((record.server, record.source)))
                    book.put(key, rules.sha256, known)
                    summary.scanned += 1
                    summary.bytes += known.bytes
                    summary.seconds += known.seconds
                else:
                    summary.cached += 1
                summary.results.append((record, known))
                step.advance()
    return summary


def scan_one(record: DumpRecord, rules: Rules, identity: Path | None, backup=None) -> ScanResult:
    """Read ``record``'s content once and return the rules that match, with the members they match in."""
    import yara_x

    scanner = yara_x.Scanner(rules.compiled)
    findings: set[Finding] = set()
    read = 0
    started = time.monotonic()
    with content.plaintext(record, identity, backup) as plain:
        for member, reader in content.members(record, plain):
            tail = b""
            while block := reader.read(WINDOW):
                read += len(block)
                window = tail + block
                for rule in scanner.scan(window).matching_rules:
                    findings.add(Finding(rule.identifier, member))
                tail = window[-OVERLAP:]
    return ScanResult(findings=sorted(findings), bytes=read, seconds=round(time.monotonic() - started, 4))
