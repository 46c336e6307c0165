"""Every error the server answers, in OpenAI's envelope {"error": {"message", "type", "param", "code"}}, made here
and nowhere else. Validation errors answer 400 (what OpenAI answers for a bad parameter), not FastAPI's 422.
No traceback reaches a client: an unexpected exception is logged and answered with a generic 500."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..errors import WordbrushError

log = logging.getLogger("wordbrush.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}
_MESSAGES = {404: "no such route", 405: "method not allowed on this route", 413: "request body too large",
             415: "the body must be JSON (Content-Type: application/json)", 500: "internal server error"}


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class APIError(HTTPException):
    """Raise anywhere in the server to answer with this status and message. An HTTPException, so that FastAPI
    passes it through unchanged even from inside its body parsing (guard.py raises it there for a 413)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status, message, headers)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=_TYPES.get(status, "server_error"), param=param,
                                         code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None, str]:
    """(message, param, code) of the first of pydantic's errors, in words a client can act on."""
    if not errors:
        return "invalid request", None, "invalid_value"
    e = errors[0]
    param = _field(tuple(e.get("loc", ())))
    kind = e.get("type", "")
    if kind == "json_invalid":
        return f"the body is not valid JSON: {e.get('ctx', {}).get('error', e.get('msg'))}", None, "invalid_json"
    if kind == "extra_forbidden":
        return f"unrecognized request argument supplied: {param}", param, "unknown_parameter"
    if kind == "missing":
        return f"missing required parameter: {param}", param, "missing_required_parameter"
    if kind in ("model_type", "dict_type", "model_attributes_type") and param is None:
        return "the body must be a JSON object", None, "invalid_type"
    msg = str(e.get("msg", "invalid value"))
    return (f"{param}: {msg}" if param else msg), param, "invalid_value"


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param, code = validation_message(list(exc.errors()))
    return error_response(400, message, param, code)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    default = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else None
    custom = isinstance(exc.detail, str) and exc.detail and exc.detail != default
    message = exc.detail if custom else _MESSAGES.get(exc.status_code, default or "request failed")
    if exc.status_code == 404:
        message = f"{message}: {request.method} {request.url.path}"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _wordbrush_error(request: Request, exc: WordbrushError) -> JSONResponse:
    return error_response(400, str(exc), code="invalid_value")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, _MESSAGES[500])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(WordbrushError, _wordbrush_error)
    app.add_exception_handler(Exception, _unexpected)
