"""What every request passes before any route: the API key and the body-size limit (pure ASGI middleware, so a
large body is refused without being held in memory). Its answers come from errors.error_response, like all others."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, error_response

PUBLIC = ("/healthz", "/", "/favicon.ico")  # no key needed: health, and the page itself (it holds no data)
PUBLIC_PREFIX = "/static/"  # the page's script and style
DRAIN_FACTOR = 16  # read and discard an oversized body up to this many times the limit, so the client sees the 413


class RequestGuard:
    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int):
        self.app, self.max_body = app, max_body_bytes
        self.expected = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # lower-case byte names; a repeated header keeps its last value
        path = scope["path"]
        if self.expected is not None and path not in PUBLIC and not path.startswith(PUBLIC_PREFIX):
            given = headers.get(b"authorization")
            scheme, _, token = (given or b"").partition(b" ")
            if given is None or scheme.lower() != b"bearer" or not hmac.compare_digest(token, self.expected):
                what = ("missing API key: send the header 'Authorization: Bearer KEY'" if given is None
                        else "invalid API key")
                response = error_response(401, what, code="invalid_api_key",
                                          headers={"WWW-Authenticate": "Bearer"})
                await _drain(receive, self.max_body * DRAIN_FACTOR)
                return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await error_response(400, "invalid Content-Length header")(scope, receive, send)
            if int(length) > self.max_body:
                await _drain(receive, self.max_body * DRAIN_FACTOR)
                response = error_response(413, f"request body is {int(length):,} bytes; the limit is "
                                          f"{self.max_body:,}", code="body_too_large")
                return await response(scope, receive, send)
        return await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        """A body sent without Content-Length (chunked) is counted as it arrives."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    if message.get("more_body", False):
                        await _drain(receive, self.max_body * DRAIN_FACTOR)
                    raise APIError(413, f"request body is over the limit of {self.max_body:,} bytes",
                                   code="body_too_large")
            return message

        return wrapped


async def _drain(receive: Receive, cap: int) -> None:
    """Read what is left of the body, up to cap bytes (past that the connection is closed on the client)."""
    seen = 0
    while seen <= cap:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
