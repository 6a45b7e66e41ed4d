"""The server's perimeter: who may ask (Host, Origin, token), how much they may send, what answers carry.

`Guard` is plain ASGI middleware, so that it runs before any route, any body read and any model:

1. **Host.** Only `localhost`, `127.0.0.1`, `[::1]`, the bound address and the names the user allows
   are answered; any other `Host` header (DNS rebinding) gets 403.
2. **Origin.** A request whose `Origin` header is present and is not the server's own gets 403.
3. **Token.** Every request but the page's own script and styles needs the token, as
   `Authorization: Bearer <token>` or as the cookie that `GET /?token=<token>` sets (HttpOnly,
   SameSite=Strict), compared in constant time; without it, 401. `GET /` without it shows how to
   open the page with the token.
4. **Body.** A POST must be `application/json` (else 415) and at most `max_body` bytes (else 413,
   answered from `Content-Length` before the body is read, or as soon as a chunked body passes it).
5. **Every response** carries `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
   an unexpected error is answered with a short message and an id, its details go to the log.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("mmrag.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
PUBLIC = ("/static/",)
"""Paths served without the token: the page's own script and styles (nothing from the index)."""
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


@dataclass
class ServeSecurity:
    """What the server lets in.

    Args:
        token: The shared secret every request must carry; None serves without one (loopback only:
            `check` refuses it elsewhere).
        host: The address the server is bound to (a name or IP, itself an allowed `Host`).
        allow_hosts: Further names the `Host` header may carry (a reverse proxy's name, a LAN name).
        max_body: Largest request body in bytes.
        max_question_chars: Longest question or query, in characters.
        max_question_tokens: Longest question, in the generator's tokens.
        queue: Requests that need the models and may wait for them; more get 429.
    """

    token: str | None = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    max_body: int = 64 * 1024
    max_question_chars: int = 2000
    max_question_tokens: int = 512
    queue: int = 16

    def check(self) -> None:
        """Refuse to serve without a token off loopback."""
        from mmrag.types import MMRAGError

        if self.token is None and not is_loopback(self.host):
            raise MMRAGError(
                f"refusing to serve on {self.host} without a token: anyone who can reach the port could "
                "read the index; drop --no-token (a token is made for you) or listen on 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 16:
            raise MMRAGError("the token is too short: give at least 16 characters (or let mmrag make one)")

    def hosts(self) -> frozenset[str]:
        bound = {self.host.lower().strip("[]")} - _ANY_ADDRESS
        return LOOPBACK | bound | {h.lower().strip("[]") for h in self.allow_hosts}


def is_loopback(host: str) -> bool:
    return host.lower().strip("[]") in LOOPBACK or host.startswith("127.")


def host_name(header: str) -> str:
    """`example.org:8000` -> `example.org`; `[::1]:8000` -> `::1` (lower case)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware enforcing `ServeSecurity` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, security: ServeSecurity) -> None:
        self.app = app
        self.sec = security
        self.hosts = security.hosts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            await _reply(send, 403, "this server answers only to its own host names (see --allow-host)")
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (f"http://{host.lower()}", f"https://{host.lower()}"):
            await _reply(send, 403, "cross-origin requests are refused")
            return
        path: str = scope["path"]
        if not path.startswith(PUBLIC):
            cookie = _cookie_name(scope)
            if path == "/" and scope["method"] == "GET" and "token" in _query(scope):
                await self._login(scope, send, cookie)
                return
            if not self._authorized(headers, cookie):
                if path == "/":
                    await _reply_html(send, 401, _LOGIN_PAGE)
                else:
                    await _reply(send, 401, "missing or wrong token: open the URL that mmrag serve printed")
                return
        if scope["method"] == "POST":
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                await _reply(send, 415, "send the body as application/json")
                return
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.sec.max_body):
                await _reply(send, 413, f"the body is over {self.sec.max_body} bytes")
                return
            receive = _capped(receive, self.sec.max_body)
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except _TooLarge:
            if not started:
                await _reply(send, 413, f"the body is over {self.sec.max_body} bytes")
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("request %s %s failed (error id %s)", scope["method"], path, error_id)
            if not started:
                await _reply(send, 500, "internal error", error_id)

    def _authorized(self, headers: dict[str, str], cookie: str) -> bool:
        if self.sec.token is None:
            return True
        given = ""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        else:
            given = _cookies(headers.get("cookie", "")).get(cookie, "")
        return hmac.compare_digest(given.encode(), self.sec.token.encode())

    async def _login(self, scope: Scope, send: Send, cookie: str) -> None:
        """`GET /?token=…`: a right token sets the cookie and redirects to the page without it."""
        given = _query(scope)["token"][-1]
        if self.sec.token is not None and not hmac.compare_digest(given.encode(), self.sec.token.encode()):
            await _reply_html(send, 401, _LOGIN_PAGE)
            return
        headers = [(b"location", b"/"), (b"cache-control", b"no-store")]
        if self.sec.token is not None:
            value = f"{cookie}={self.sec.token}; Path=/; HttpOnly; SameSite=Strict"
            headers.append((b"set-cookie", value.encode("latin-1")))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _cookie_name(scope: Scope) -> str:
    """One cookie per port: two servers on one host do not overwrite each other's token."""
    server = scope.get("server") or ("", 0)
    return f"mmrag-token-{server[1] or 0}"


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _capped(receive: Receive, cap: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise _TooLarge
        return message

    return wrapped


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            if b"x-content-type-options" not in names:
                headers.append((b"x-content-type-options", b"nosniff"))
            if b"referrer-policy" not in names:
                headers.append((b"referrer-policy", b"no-referrer"))
            message["headers"] = headers
        await send(message)

    return wrapped


async def _reply(send: Send, status: int, error: str, error_id: str | None = None) -> None:
    body = {"error": error} | ({"id": error_id} if error_id else {})
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _reply_html(send: Send, status: int, html: str) -> None:
    data = html.encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
    headers.append((b"content-security-policy", b"default-src 'none'"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmrag: token needed</title></head>
<body><h1>mmrag</h1><p>This server needs its token. Open the URL that <code>mmrag serve</code> printed
(it ends in <code>?token=…</code>), or run <code>mmrag serve --token …</code> with a token you know.</p>
</body></html>
"""

__all__ = ["LOOPBACK", "Guard", "ServeSecurity", "host_name", "is_loopback"]
