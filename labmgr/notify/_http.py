"""One small HTTP sender shared by the heartbeat and webhook notifiers.

Policy: a timeout per attempt, a few retries on transient trouble (connection
errors, timeouts, 5xx, 429), and never an exception out: the caller gets the
reason as a string and turns it into a warning. A dead notification service must
not turn a good drill into a failed one.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.parse
import urllib.request

from tenacity import (RetryError, Retrying, retry_if_exception, stop_after_attempt,
                      wait_exponential)

from .. import __version__

TIMEOUT = 10.0  # seconds per attempt
RETRIES = 2     # retries after the first attempt
BACKOFF = 0.5   # seconds before the first retry, doubling after
USER_AGENT = f"labmgr/{__version__}"


class _Transient(Exception):
    """An attempt failed in a way worth retrying."""


class _Permanent(Exception):
    """An attempt failed in a way a retry will not fix (4xx, bad URL)."""


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: ping and webhook URLs carry their secret in the path."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}/…"
    except ValueError:
        return "<unparseable URL>"


def _attempt(request: urllib.request.Request, timeout: float) -> None:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as error:
        message = f"HTTP {error.code} {error.reason}"
        if error.code >= 500 or error.code == 429:
            raise _Transient(message) from error
        raise _Permanent(message) from error
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (OSError, socket.timeout)):
            raise _Transient(_describe(reason)) from error
        raise _Permanent(str(reason)) from error
    except (OSError, socket.timeout) as error:  # timeouts while reading, resets
        raise _Transient(_describe(error)) from error


def _describe(error: BaseException) -> str:
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def deliver(method: str, url: str, body: bytes | None = None, *,
            content_type: str | None = None, timeout: float = TIMEOUT,
            retries: int = RETRIES, wait_max: float = 2.0) -> str | None:
    """Send one request; ``None`` when it got a 2xx/3xx answer, otherwise why not.

    Never raises. The reason never contains the URL's path or query (secrets live there).
    """
    shown = redact_url(url)
    try:
        scheme = urllib.parse.urlsplit(url).scheme
    except ValueError:
        return f"{shown}: not a valid URL"
    if scheme not in ("http", "https"):
        return f"{shown}: only http and https URLs are supported"
    headers = {"User-Agent": USER_AGENT}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
    except ValueError as error:
        return f"{shown}: {error}"
    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=BACKOFF, max=wait_max),
        retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
        reraise=True,
    )
    try:
        retrying(_attempt, request, timeout)
    except (_Transient, _Permanent) as error:
        return f"{method} {shown} failed: {_redact_text(str(error), url)}"
    except RetryError as error:  # not raised with reraise=True; kept for safety
        return f"{method} {shown} failed: {error}"
    except Exception as error:  # noqa: BLE001 - a notifier must never break a drill
        return f"{method} {shown} failed: {type(error).__name__}: {_redact_text(str(error), url)}"
    return None


def _redact_text(text: str, url: str) -> str:
    return text.replace(url, redact_url(url)) if url else text


_SECRETS = [
    # scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]+:)[^\s/@]+@"), r"\1***@"),
    # password=..., PGPASSWORD=..., token: ..., secret=...
    (re.compile(r"(?i)\b([A-Z_]*(?:password|passwd|pwd|secret|token|api[_-]?key)(?:_[A-Z_]*)?"
                r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"), r"\1***"),
]


def scrub(text: str, limit: int | None = None) -> str:
    """Mask obvious credentials (URL userinfo, ``password=``-style pairs); cut to ``limit``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
