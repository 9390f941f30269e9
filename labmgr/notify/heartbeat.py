"""Dead man's switch pings in the healthchecks.io convention.

``<url>/start`` when a drill begins, ``<url>`` when it succeeded, ``<url>/fail``
(with a short text body) when it failed. The service alerts on a fail ping and on
a missing ping, so a drill that never ran is noticed too. Works with
healthchecks.io, a self-hosted Healthchecks, and services that copied the
convention (e.g. Uptime Kuma push URLs take ``<url>`` only).

Every function returns ``True`` when the ping was accepted and ``False``
otherwise; none raises. Pass ``errors=[]`` to collect the reason for a warning.
"""

from __future__ import annotations

from ._http import RETRIES, TIMEOUT, deliver, scrub

FAIL_BODY_LIMIT = 4000  # characters; healthchecks keeps the first 100 kB of a body by default


def ping_url(url: str, kind: str) -> str:
    """The URL for ``kind`` ("start", "success", "fail") under a check's ping ``url``."""
    base = url.rstrip("/")
    if kind == "success":
        return base
    if kind in ("start", "fail"):
        return f"{base}/{kind}"
    raise ValueError(f"unknown ping kind {kind!r}")


def _ping(url: str, kind: str, body: str | None, timeout: float, retries: int,
          errors: list[str] | None) -> bool:
    if not url:
        return False
    data = None if body is None else scrub(body, FAIL_BODY_LIMIT).encode("utf-8")
    reason = deliver("POST" if data is not None else "GET", ping_url(url, kind), data,
                     content_type="text/plain; charset=utf-8" if data is not None else None,
                     timeout=timeout, retries=retries)
    if reason is not None:
        if errors is not None:
            errors.append(f"heartbeat {kind} ping: {reason}")
        return False
    return True


def ping_start(url: str, *, timeout: float = TIMEOUT, retries: int = RETRIES,
               errors: list[str] | None = None) -> bool:
    """Tell the check a drill has started (the service then measures its duration)."""
    return _ping(url, "start", None, timeout, retries, errors)


def ping_success(url: str, *, timeout: float = TIMEOUT, retries: int = RETRIES,
                 errors: list[str] | None = None) -> bool:
    """Tell the check the drill succeeded."""
    return _ping(url, "success", None, timeout, retries, errors)


def ping_fail(url: str, body: str = "", *, timeout: float = TIMEOUT, retries: int = RETRIES,
              errors: list[str] | None = None) -> bool:
    """Tell the check the drill failed; ``body`` (short text, credentials masked) is shown in its log."""
    return _ping(url, "fail", body, timeout, retries, errors)
