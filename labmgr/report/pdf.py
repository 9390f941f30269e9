"""The report as a PDF: the HTML page printed by headless Chromium (``--print-to-pdf``).

Chromium draws the inline SVG charts and the banner's colours exactly as a browser shows them;
it runs as a subprocess with its own throw-away profile, so two prints never share state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..atomic import atomic_write
from ..errors import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 120


def find_chromium() -> str:
    """``$LABMGR_CHROMIUM``, else the first of BROWSERS on the PATH."""
    for name in ([os.environ["LABMGR_CHROMIUM"]] if os.environ.get("LABMGR_CHROMIUM") else BROWSERS):
        found = shutil.which(name)
        if found:
            return found
    raise ReportError("no Chromium to print the PDF with",
                      hint="install Debian's 'chromium' package, or set LABMGR_CHROMIUM to the browser")


def html_to_pdf(html: str, output: Path, timeout: float = TIMEOUT) -> Path:
    """Print ``html`` to the PDF ``output`` (A4, backgrounds kept, no browser header or footer)."""
    browser = find_chromium()
    with tempfile.TemporaryDirectory(prefix="labmgr-pdf-") as work:
        page, printed = Path(work) / "report.html", Path(work) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--disable-background-networking", "--disable-extensions",
                   f"--user-data-dir={work}/profile", "--no-pdf-header-footer",
                   f"--print-to-pdf={printed}", page.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "HOME": work})
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print the PDF within {timeout:g} s",
                              hint="check that 'chromium --headless' runs on this machine") from None
        if done.returncode != 0 or not printed.is_file() or not printed.read_bytes().startswith(b"%PDF"):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReportError(f"Chromium could not print the PDF (exit {done.returncode}): {last}",
                              hint="check that 'chromium --headless --print-to-pdf' runs on this machine")
        return atomic_write(output, printed.read_bytes())
