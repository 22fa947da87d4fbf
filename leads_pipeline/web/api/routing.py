"""How an API route reads its request: ``ApiRoute``, the route class of every API router.

FastAPI validates a JSON body against the route's pydantic model; around that, ``ApiRoute`` keeps what the service
promised before FastAPI:

- the body is read with a 1 MiB limit while it streams in (413, before anything else: it is never held whole);
- a body that is missing (400 ``missing_body``), not JSON (415), not valid JSON — nested too deeply included, which
  would otherwise be a RecursionError — (400 ``invalid_json``), not an object (400 ``invalid_input``), or holds text
  neither backend can store (NUL characters, lone surrogates: 400 ``invalid_input``) is noted, not answered at once:
  the request then fails FastAPI's validation after the dependencies ran, so a caller without credentials still gets
  401, and one without the role 403, whatever the body;
- every error, from a dependency, the validation or the operation, is answered in the API's error shape
  (``errors.error_response``), never FastAPI's ``{"detail": …}`` or a 422.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError, error_response

MAX_BODY_BYTES = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than {limit} bytes.", "too_large")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise too_large(limit)
        except ValueError:
            raise ApiError(400, "Bad Content-Length header.", "invalid_input") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def unstorable_text(value: Any, where: str = "body") -> str | None:
    """Where ``value`` holds a string neither backend can store (NUL, lone surrogates), and why; None if nowhere.

    Walks the value with a stack, not recursion, so no nesting depth that JSON parsing let through can overflow.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return f"{at}: text must not contain NUL characters."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"{at}: text is not valid Unicode."
        elif isinstance(item, dict):
            for k, v in item.items():
                stack.append((k, at))
                stack.append((v, f"{at}.{k}"))
        elif isinstance(item, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))
    return None


class ApiRequest(Request):
    """A request whose body is read within the limit and whose JSON is parsed without raising.

    ``json()`` answers None for a body that cannot be used and notes why in ``state.body_problem``; FastAPI's
    validation of the route's body then fails, and the error answer reports the noted problem.
    """

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            self._body = await read_body(self)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = self._parse(await self.body())
        return self._json

    def _parse(self, raw: bytes) -> Any:
        try:
            data = json.loads(raw.decode("utf-8"))
        except RecursionError:
            return self._problem(ApiError(400, "The body is not valid JSON: it is nested too deeply.",
                                          "invalid_json"))
        except (UnicodeDecodeError, ValueError) as exc:
            return self._problem(ApiError(400, f"The body is not valid JSON: {exc}.", "invalid_json"))
        if not isinstance(data, dict):
            return self._problem(ApiError(400, "The body must be a JSON object.", "invalid_input"))
        where = unstorable_text(data)
        if where is not None:
            return self._problem(ApiError(400, where, "invalid_input"))
        return data

    def _problem(self, error: ApiError) -> None:
        self.state.body_problem = error
        return None

    async def inspect_body(self, schema: str) -> None:
        """Read the body now (413 at once); note a missing, non-JSON or unusable one for the answer."""
        raw = await self.body()
        if not raw.strip():
            self._problem(ApiError(400, "Send a JSON object as the body (Content-Type: application/json); see the "
                                   f"{schema} schema in /openapi.json.", "missing_body"))
            return
        content_type = self.headers.get("content-type", "")
        if not is_json(content_type):
            self._problem(ApiError(415, "Send the body as JSON (Content-Type: application/json), not "
                                   f"{content_type[:100] or 'without a content type'!r}.", "unsupported_media_type"))
            return
        await self.json()


class ApiRoute(APIRoute):
    """The route class of the API's routers (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        body = self.body_field
        schema = getattr(body.field_info.annotation, "__name__", "request") if body is not None else None

        async def route_handler(request: Request) -> Response:
            request = ApiRequest(request.scope, request.receive)
            try:
                if schema is not None:
                    await request.inspect_body(schema)
                return await handle(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes an answer in the API's shape
                return error_response(exc, request)

        return route_handler


def by_method(**handlers: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """One Starlette endpoint for several methods of a path (the console's pages; a 405 then names every method)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch
