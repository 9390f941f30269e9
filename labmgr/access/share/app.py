"""The ASGI application of a share: a gate in front of everything, the share's own pages under
``/_labmgr/``, and the lab's application everywhere else.

The gate refuses what a share never carries (CONNECT, requests for another host or port,
absolute-form targets) and sets the headers every answer gets: no caching, no framing by
other sites, no MIME sniffing, no referrer beyond the share itself. A link ``/s/TOKEN`` sets
the person's cookie (HttpOnly, SameSite=Lax, Secure under TLS) and leads to the page with the
banner; every other request needs that cookie, a person not revoked, and a share not expired.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from urllib.parse import parse_qs

import anyio
import httpcore
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import state
from .journal import Journal
from .proxy import MAX_BODY, Upstream, pump_websockets

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
OWN_PAGES_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
                 "frame-ancestors 'none'; base-uri 'none'")


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("labmgr.access.share", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


class Refused(Exception):
    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status, self.heading, self.message = status, heading, message


def expired_error() -> Refused:
    return Refused(410, "This link has expired", "The test lab behind it is no longer shared. "
                   "Ask the person who sent it for a new one if you still need it.")


class ShareSite:
    """Everything one share serves; ``point_of()`` is the lab's current point in time (read per page)."""

    def __init__(self, share: state.Share, upstream: Upstream, journal: Journal,
                 point_of: Callable[[], str], tls: bool) -> None:
        self.share, self.upstream, self.journal, self.point_of, self.tls = share, upstream, journal, point_of, tls
        self.cookie = f"lmshare_{share.id}"
        self.origin = share.url
        self._mtime = 0.0
        self.app = Starlette(routes=[
            Route("/s/{token}", self.open_link),
            Route("/_labmgr/", self.frame),
            Route("/_labmgr/signoff", self.signoff, methods=["GET", "POST"]),
            Route("/{path:path}", self.proxy, methods=METHODS),
            WebSocketRoute("/{path:path}", self.proxy_websocket),
        ], exception_handlers={Refused: self.refused})

    # the gate ------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.gate(scope)
        if refused:
            self.journal.refused(f"{refused.message} ({_client(scope)})")
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await self.page(refused)(scope, receive, self.headers_added(send, own=True))
        own = scope["path"].startswith(("/_labmgr/", "/s/"))
        await self.app(scope, receive, self.headers_added(send, own))

    def gate(self, scope) -> Refused | None:
        """Why a request is refused before anything else, or None."""
        method = scope.get("method", "GET")
        raw = scope.get("raw_path") or scope["path"].encode()
        target = raw.decode("latin-1", "replace")[:200]
        if method in ("CONNECT", "TRACE"):
            return Refused(405, "Not here", f"method {method} is not carried by a share ({method} {target})")
        if not raw.startswith(b"/") or not scope["path"].startswith("/"):       # proxy form: http://other:22/
            return Refused(400, "Not here", f"a share carries requests for its own application only, "
                                            f"not {method} {target}")
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host not in self.allowed_hosts():
            return Refused(400, "Not here", f"a share answers at {self.share.url} only, not for host '{host}'")
        return None

    def allowed_hosts(self) -> set[str]:
        from urllib.parse import urlsplit

        url = urlsplit(self.share.url)
        listen_host, _, port = self.share.listen.rpartition(":")
        default = 443 if url.scheme == "https" else 80
        names = {url.hostname, "localhost", "127.0.0.1"}
        if listen_host not in ("0.0.0.0", "::", ""):
            names.add(listen_host)
        out = {f"{n}:{port}" for n in names if n} | {f"{url.hostname}:{url.port or default}"}
        if int(port) == (url.port or default):
            out.add(url.hostname)
        return out

    def headers_added(self, send, own: bool):
        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache"),
                            (b"x-content-type-options", b"nosniff")]
                if own:
                    headers += [(b"x-frame-options", b"DENY"), (b"content-security-policy", OWN_PAGES_CSP.encode()),
                                (b"referrer-policy", b"same-origin")]
                else:       # the application is framed by the share's own page, by no other site
                    headers += [(b"x-frame-options", b"SAMEORIGIN"),
                                (b"content-security-policy", b"frame-ancestors 'self'"),
                                (b"referrer-policy", b"same-origin")]
                message = {**message, "headers": headers}
            await send(message)
        return wrapped

    # who is asking -------------------------------------------------------------------
    def current(self) -> state.Share:
        """The share as its file says now (``labmgr unshare --person`` rewrites it)."""
        try:
            mtime = self.share.path.stat().st_mtime
            if mtime != self._mtime:
                self.share, self._mtime = state.load(self.share.path), mtime
        except (OSError, ValueError):
            pass
        return self.share

    def person(self, token: str | None) -> state.Person:
        share = self.current()
        if share.expired():
            raise expired_error()
        person = share.person_for(token) if token else None
        if person is None:
            raise Refused(403 if not token else 404, "Not a valid link",
                          "This address needs the personal link you were sent. Open that link again.")
        if person.revoked:
            raise Refused(403, "This link was withdrawn", "Ask the person who sent it if you still need access.")
        return person

    # the share's pages ---------------------------------------------------------------
    async def open_link(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            person = self.person(token)
        except Refused as refused:
            self.journal.refused(f"link: {refused.heading} ({_client(request.scope)})")
            raise
        self.journal.event(person.name, "opened", f"link ({_client(request.scope)})")
        response = RedirectResponse("/_labmgr/", status_code=303)
        response.set_cookie(self.cookie, token, httponly=True, samesite="lax", secure=self.tls, path="/")
        return response

    async def frame(self, request: Request) -> Response:
        person = self.person(request.cookies.get(self.cookie))
        return self.render("frame.html.j2", person.name)

    async def signoff(self, request: Request) -> Response:
        person = self.person(request.cookies.get(self.cookie))
        if request.method == "GET":
            return self.render("signoff.html.j2", person.name, verdict="", note="", error="")
        origin = request.headers.get("origin")
        scheme = "https" if self.tls else "http"
        if origin and origin != f"{scheme}://{request.headers.get('host', '')}":      # sent from another site
            raise Refused(403, "Not sent from this page", "Send your answer from the sign-off page itself.")
        body = await request.body()
        if len(body) > 16384:
            raise Refused(413, "Too long", "Keep the note under 2000 characters.")
        form = parse_qs(body.decode("utf-8", "replace"))       # the page's own urlencoded form
        verdict, note = form.get("verdict", [""])[0], form.get("note", [""])[0].strip()[:2000]
        if verdict not in ("right", "wrong"):
            return self.render("signoff.html.j2", person.name, verdict="", note=note, error="Choose one answer.",
                               status=400)
        if verdict == "wrong" and not note:
            return self.render("signoff.html.j2", person.name, verdict=verdict, note="", status=400,
                               error="Say what is wrong, so it can be looked at.")
        point = self.point_of()
        future = self.journal.sign_off(point, person.name, verdict, note or "my data is right")
        try:
            signoff = await anyio.to_thread.run_sync(lambda: future.result(timeout=30))
        except Exception as exc:        # the history could not be written (a full disk): say so, keep the note
            return self.render("signoff.html.j2", person.name, verdict=verdict, note=note, status=503,
                               error=f"Your answer could not be recorded ({type(exc).__name__}: {exc}). "
                                     "Please send it again in a moment.")
        return self.render("signed.html.j2", person.name, signoff=signoff)

    def render(self, template: str, person: str, status: int = 200, **values) -> HTMLResponse:
        share = self.current()
        text = _templates().get_template(template).render(
            lab=share.lab, hostname=share.hostname, point=self.point_of() or "the clean clone", person=person,
            expires=share.expires_at.replace("T", " ").replace("Z", " UTC"), **values)
        return HTMLResponse(text, status_code=status)

    def page(self, refused: Refused) -> HTMLResponse:
        text = _templates().get_template("refused.html.j2").render(lab="labmgr", heading=refused.heading,
                                                                    message=refused.message)
        return HTMLResponse(text, status_code=refused.status)

    async def refused(self, request: Request, exc: Refused) -> Response:
        return self.page(exc)

    # the application -----------------------------------------------------------------
    async def proxy(self, request: Request) -> Response:
        person = self.person(request.cookies.get(self.cookie))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise Refused(413, "Too large", "A share carries request bodies up to 64 MiB.")
        target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if request.url.query:
            target += f"?{request.url.query}"
        headers = self.upstream.request_headers(request.scope["headers"], self.origin, self.cookie)
        try:
            upstream = await self.upstream.forward(request.method, target, headers, bytes(body))
        except (httpcore.TimeoutException, httpcore.ProtocolError, httpcore.NetworkError) as exc:
            self.journal.event(person.name, "page", f"{request.method} {target}: lab server not reached: {exc}")
            raise Refused(502, "The application does not answer",
                          f"{self.share.hostname} in the lab did not answer ({exc}). Try again in a moment.") from None
        content_type = next((v for k, v in upstream.headers if k.lower() == b"content-type"), b"").decode("latin-1")
        if content_type.startswith("text/html"):     # pages, not every image: who opened what
            self.journal.event(person.name, "page", f"{request.method} {target} {upstream.status}")
        return Streamed(upstream, self.upstream.response_headers(upstream.headers, self.origin))

    async def proxy_websocket(self, websocket: WebSocket) -> None:
        try:
            person = self.person(websocket.cookies.get(self.cookie))
        except Refused:
            return await websocket.close(code=1008)
        target = websocket.scope.get("raw_path", websocket.url.path.encode()).decode("latin-1")
        if websocket.url.query:
            target += f"?{websocket.url.query}"
        headers = self.upstream.request_headers(websocket.scope["headers"], self.origin, self.cookie)
        try:
            upstream = await self.upstream.websocket(target, headers, list(websocket.scope.get("subprotocols", [])))
        except Exception as exc:          # refused, not a WebSocket server, unreachable: the client is told by a close
            self.journal.event(person.name, "websocket", f"{target}: not opened: {exc}")
            return await websocket.close(code=1011)
        self.journal.event(person.name, "websocket", target)
        await websocket.accept(subprotocol=upstream.subprotocol)
        try:
            await pump_websockets(websocket, upstream)
        finally:
            await upstream.close()


class Streamed(Response):
    """The application's response as it comes: status, raw headers (already filtered), body streamed."""

    def __init__(self, upstream: httpcore.Response, headers: list[tuple[bytes, bytes]]) -> None:
        self.upstream, self.status_code, self.raw = upstream, upstream.status, headers
        self.background = None

    async def __call__(self, scope, receive, send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw})
            if scope.get("method") != "HEAD":
                async for chunk in self.upstream.aiter_stream():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.upstream.aclose()


def _client(scope) -> str:
    client = scope.get("client")
    return f"from {client[0]}" if client else "from ?"
