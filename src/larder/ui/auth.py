"""The web catalog's gate: an optional token on every route, a Host check against DNS rebinding, and
the security headers every response carries (ASGI middleware, before routing).

With a token set (``larder ui --token`` or ``LARDER_UI_TOKEN``), a request is let through when it
carries the token as ``Authorization: Bearer <token>``, as the ``larder_ui_token`` cookie, or once in
the query (``?token=...``: answered with a redirect to the same URL without it, setting the cookie, so
the token does not stay in the address bar or the history). Anything else gets 401: JSON for API
routes and clients that do not ask for HTML, a small sign-in form for browsers (``POST /login``
checks the token and sets the cookie). Static files, the OpenAPI document and ``/api/health`` are
routes like any other.

The cookie is ``HttpOnly`` and ``SameSite=Strict``, and edits are JSON requests (which a form on
another site cannot send without a CORS preflight that this app never grants), so another site open
in the same browser cannot act with the cookie.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

COOKIE = "larder_ui_token"

#: Pages are built from this app's own files only: nothing may be loaded from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_LOGIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

_LOGIN = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>larder catalog: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:15vh auto;max-width:380px;color:#222}}
input{{width:100%;padding:8px;margin:8px 0;box-sizing:border-box}}button{{padding:8px 16px}}
.err{{color:#b00020}}</style></head><body><h1>larder catalog</h1>
<p>This catalog is protected by a token (<code>larder ui --token</code> or <code>LARDER_UI_TOKEN</code>).</p>
{error}<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" autofocus autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>"""


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


async def _send(send: Any, status: int, body: bytes, content_type: str, extra: Sequence[tuple[str, str]] = ()) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware: Host check, token check, security headers and a ``Server-Timing`` header.

    Parameters
    ----------
    token
        Required on every request when given.
    allowed_hosts
        Host names (without port) the ``Host`` header may carry; ``None`` accepts any (the server is
        bound to a non-loopback interface and the user chose so).
    """

    def __init__(self, app: Any, *, token: str | None, allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.token = token or None
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    def _ok(self, presented: str | None) -> bool:
        assert self.token is not None
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        local = path[len(root):] if root and path.startswith(root) else path
        if self.allowed is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name.lower() not in self.allowed:
                await _send(send, 400, b'{"error":"InvalidHost","detail":"This server does not answer to that '
                            b'Host name."}', "application/json")
                return
        extra: list[tuple[str, str]] = []
        if self.token is not None:
            auth = headers.get("authorization", "")
            bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            cookie = _cookies(headers.get("cookie", "")).get(COOKIE)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            if local == "/login" and scope.get("method") == "POST":
                await self._login(scope, receive, send, root)
                return
            if "token" in query and self._ok(query["token"]):
                rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                                keep_blank_values=True) if k != "token"])
                location = path + (f"?{rest}" if rest else "")
                await _send(send, 303, b"", "text/plain", [("location", location), self._cookie(root)])
                return
            if not (self._ok(bearer) or self._ok(cookie)):
                await self._refuse(scope, send, headers, root, local, wrong=bool(bearer or cookie or "token" in query))
                return
        await self.app(scope, receive, self._decorate(send, started, extra))

    def _cookie(self, root: str) -> tuple[str, str]:
        assert self.token is not None
        return ("set-cookie", f"{COOKIE}={self.token}; Path={root or '/'}; HttpOnly; SameSite=Strict")

    async def _refuse(self, scope: dict[str, Any], send: Any, headers: dict[str, str], root: str, local: str,
                      *, wrong: bool) -> None:
        wants_html = "text/html" in headers.get("accept", "") and not local.startswith("/api/")
        if wants_html and scope.get("method") in ("GET", "HEAD"):
            target = scope.get("path", "/")
            qs = scope.get("query_string", b"").decode("latin-1")
            page = _LOGIN.format(action=escape(f"{root}/login"), next=escape(target + (f"?{qs}" if qs else "")),
                                 error='<p class="err">That token is not valid.</p>' if wrong else "")
            await _send(send, 401, page.encode(), "text/html; charset=utf-8",
                        [("content-security-policy", _LOGIN_CSP), ("www-authenticate", 'Bearer realm="larder"'),
                         ("cache-control", "no-store")])
            return
        detail = ("The token is not valid." if wrong else "This catalog needs a token: send it as "
                  "'Authorization: Bearer <token>' (set with larder ui --token or LARDER_UI_TOKEN).")
        body = ('{"error":"Unauthorized","detail":"' + detail + '"}').encode()
        await _send(send, 401, body, "application/json", [("www-authenticate", 'Bearer realm="larder"')])

    async def _login(self, scope: dict[str, Any], receive: Any, send: Any, root: str) -> None:
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > 16_384:
                await _send(send, 413, b'{"error":"TooLarge","detail":"The sign-in form is too large."}',
                            "application/json")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        form = dict(parse_qsl(b"".join(chunks).decode("utf-8", "replace")))
        nxt = form.get("next") or f"{root}/"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = f"{root}/"
        if self._ok(form.get("token")):
            await _send(send, 303, b"", "text/plain", [("location", nxt), self._cookie(root)])
            return
        page = _LOGIN.format(action=escape(f"{root}/login"), next=escape(nxt),
                             error='<p class="err">That token is not valid.</p>')
        await _send(send, 401, page.encode(), "text/html; charset=utf-8",
                    [("content-security-policy", _LOGIN_CSP), ("cache-control", "no-store")])

    def _decorate(self, send: Any, started: float, extra: list[tuple[str, str]]) -> Any:
        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                add = [(b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()),
                       (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                       (b"x-frame-options", b"DENY")]
                if b"content-security-policy" not in names:
                    add.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names:
                    add.append((b"cache-control", b"no-store" if self.token else b"no-cache"))
                add += [(k.encode(), v.encode()) for k, v in extra]
                message = {**message, "headers": headers + add}
            await send(message)

        return wrapped


__all__ = ["COOKIE", "CSP", "Gate"]
