"""Who may use the UI: whoever holds the random access token, and only on purpose.

As a notebook server does, `palmnet ui` makes a random token at start and
prints it in the URL (`/?token=...`). The first request with it sets a cookie
(HttpOnly, SameSite=Strict) holding the token, so later pages need no token in
the URL; a request with neither the cookie nor the token (query or
`Authorization: Bearer`) is answered 401, pages and API alike. There is no
password to forget to set and no default: the token is never blank.

Every write (any method but GET/HEAD) also needs the CSRF token, in a form
field `csrf` or the `X-CSRF-Token` header (htmx sends it). It is an HMAC of the
access token, so it is bound to this server's session and a page of another
origin, which cannot read our pages or cookie, cannot forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "palmnet_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def csrf_of(token: str) -> str:
    return hmac.new(token.encode(), b"palmnet-ui-csrf", hashlib.sha256).hexdigest()


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class TokenAuth:
    """ASGI middleware: 401 without the token, 403 for a write without the CSRF token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the UI's access token must not be blank")
        self.app = app
        self.token = token
        self.csrf = csrf_of(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        request = Request(scope)
        from_query = request.query_params.get("token")
        if same(from_query, self.token):
            await self._login(request)(scope, receive, send)
            return
        if not self._authorized(request):
            await self._unauthorized()(scope, receive, send)
            return
        if request.method not in SAFE_METHODS and not await self._csrf_ok(scope, receive):
            response = PlainTextResponse(
                "403: this write carries no valid CSRF token (reload the page)", status_code=403
            )
            await response(scope, receive, send)
            return
        if "palmnet.body" in scope:  # the CSRF check read the body: hand it on
            receive = _body_receiver(scope.pop("palmnet.body"))
        await self.app(scope, receive, send)

    def _authorized(self, request: Request) -> bool:
        if same(request.cookies.get(COOKIE), self.token):
            return True
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and same(header[7:], self.token)

    def _login(self, request: Request) -> Response:
        """Token in the URL: set the cookie and drop the token from the address bar."""
        target = request.url.remove_query_params("token")
        response = RedirectResponse(target.path + (f"?{target.query}" if target.query else ""), 303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        return response

    @staticmethod
    def _unauthorized() -> Response:
        return PlainTextResponse(
            "401: palmnet ui needs its access token: open the URL `palmnet ui` printed "
            "(http://...?token=...)",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="palmnet ui"'},
        )

    async def _csrf_ok(self, scope: Scope, receive: Receive) -> bool:
        """The header, else the `csrf` field of a urlencoded or multipart body
        (read here and kept in the scope for the app)."""
        request = Request(scope, receive)
        if same(request.headers.get(CSRF_HEADER), self.csrf):
            return True
        body = await request.body()
        scope["palmnet.body"] = body
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/x-www-form-urlencoded"):
            values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [])
            return any(same(v, self.csrf) for v in values)
        if kind.startswith("multipart/form-data"):
            form = await Request(scope, _body_receiver(body)).form()
            value = form.get(CSRF_FIELD)
            return isinstance(value, str) and same(value, self.csrf)
        return False


# Every answer: never inside another site's frame (clickjacking a write button), no
# guessing of content types, no Referer (a first URL still holds the token).
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


def _with_headers(send: Send) -> Send:
    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending


def _body_receiver(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
