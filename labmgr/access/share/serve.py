"""``labmgr share``: check the request, open the way into the lab, write the share's file, print
one link per person and serve until Ctrl+C, SIGTERM (``lab down``, ``labmgr unshare``) or death;
the share's file and lock go with the process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import signal
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import uvicorn

from ...errors import LabError
from ...lab import records
from .. import login
from . import state
from .app import ShareSite
from .journal import Journal
from .proxy import Upstream

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[\w][\w .@'-]{0,63}$")


def parse_duration(text: str) -> timedelta:
    """'4h' -> 4 hours; also 30m, 2d (and seconds, 90s)."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise LabError(f"--for '{text}' is not a duration", hint="e.g. 30m, 4h or 2d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def people_names(people: int | None, names: str | None) -> list[str]:
    if people is not None and names:
        raise LabError("give --people N or --names a,b,c, not both")
    if names:
        listed = [n.strip() for n in names.split(",") if n.strip()]
        for name in listed:
            if not _NAME.match(name):
                raise LabError(f"--names: '{name}' is not a usable name",
                               hint="letters, digits, spaces, . @ ' -; at most 64 characters")
        if len(set(listed)) != len(listed):
            raise LabError("--names: each person once")
        return listed
    count = 1 if people is None else people
    if not 0 < count <= 500:
        raise LabError(f"--people {count}: between 1 and 500")
    return [f"person {n}" for n in range(1, count + 1)]


@dataclass
class Started:
    share: state.Share
    links: dict[str, str]       # person -> link
    site: ShareSite
    sock: socket.socket
    tls: tuple[Path, Path] | None        # certificate and key
    hold: state.Hold
    journal: Journal


def start_share(lab: str, server_port: str, duration: str = "4h", listen: str = "127.0.0.1:0",
                people: int | None = None, names: str | None = None, url: str | None = None,
                cert: Path | None = None, key: Path | None = None) -> Started:
    """Everything checked and bound, the share's file written, not yet serving."""
    lifetime = parse_duration(duration)
    who = people_names(people, names)
    address = login.parse_listen(listen)
    login.parse_server_port(server_port)
    tls = check_tls(cert, key)
    way = login.way_to(lab, server_port)
    opener = way.opener if not way.remote else _socket_opener(way.opener)
    return open_share(lab, way.env, way.target, way.port, opener, lifetime, who, address, url, tls,
                      point_of=lambda: _point(lab))


def check_tls(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    if (cert is None) != (key is None):
        raise LabError("TLS needs both --cert and --key")
    if cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise LabError(f"cannot use certificate {cert} with key {key}: {exc}") from None
    return cert, key


def open_share(lab: str, env, target: login.Target, port: int, opener, lifetime: timedelta, who: list[str],
               address: tuple[str, int], url: str | None, tls: tuple[Path, Path] | None,
               point_of) -> Started:
    """The share of ``target``:``port`` reached with ``opener``: its socket bound, its file written."""
    if url and not url.startswith(("http://", "https://")):
        raise LabError(f"--url '{url}' is not an http:// or https:// address")
    listen_host, listen_port = address
    try:
        sock = socket.create_server((listen_host, listen_port),
                                    family=socket.AF_INET6 if ":" in listen_host else socket.AF_INET)
    except OSError as exc:
        raise LabError(f"cannot listen on {listen_host}:{listen_port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    base = (url or default_url(listen_host, bound, tls is not None)).rstrip("/")
    moment = datetime.now(timezone.utc)
    tokens = {name: state.new_token() for name in who}
    share = state.Share(state.new_id(), lab, env.name, target.server.name, target.server.hostname, target.ip,
                        port, f"{listen_host}:{bound}", base, _iso(moment), _iso(moment + lifetime),
                        people=[state.Person(name, state.token_hash(token)) for name, token in tokens.items()])
    hold = state.Hold(share)
    share.save()
    journal = Journal(env, lab, share.id)
    journal.event("", "shared", f"{share.hostname}:{share.port} for {', '.join(who)} until {share.expires_at}")
    site = ShareSite(share, Upstream(share.hostname, share.port, opener), journal, point_of, tls=tls is not None)
    return Started(share, {name: share.link(token) for name, token in tokens.items()}, site, sock, tls,
                   hold, journal)


def serve(started: Started, on_server=None) -> None:
    """Serve until Ctrl+C or SIGTERM (in the main thread; elsewhere, set the server's ``should_exit``,
    which ``on_server`` receives); then remove the share's file."""
    tls = {"ssl_certfile": str(started.tls[0]), "ssl_keyfile": str(started.tls[1])} if started.tls else {}
    config = uvicorn.Config(started.site, log_level="warning", lifespan="off", access_log=False,
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=3,
                            ws="websockets-sansio", **tls)
    server = _Server(config)
    if on_server:
        on_server(server)
    try:
        server.run(sockets=[started.sock])
    finally:
        started.journal.event("", "ended", "share ended")
        started.journal.close()
        started.hold.release()
        started.sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server, ending on SIGINT or SIGTERM as a finished command (exit 0) rather than
    re-raising the signal after its graceful shutdown, so the share's files are removed."""

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def _stop(self, *_) -> None:
        self.should_exit = True


def default_url(host: str, port: int, tls: bool) -> str:
    scheme = "https" if tls else "http"
    if ipaddress.ip_address(host).is_unspecified:
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _point(lab: str) -> str:
    try:
        return records.load(lab).point.get("at", "")
    except Exception:
        return ""


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _socket_opener(opener):
    """A remote door gives SSH channels; the web server wants sockets: a socketpair, copied both ways."""
    from ..forward import _copy

    def open_socket():
        channel = opener()
        ours, theirs = socket.socketpair()
        done = threading.Barrier(2, action=lambda: (theirs.close(), channel.close()))
        for source, target in ((theirs, channel), (channel, theirs)):
            threading.Thread(target=_copy, args=(source, target, done), daemon=True).start()
        return ours
    return open_socket

