"""d6's wire conventions shared by every sandbox route: bodies, errors, parameters, cursors.

Everything here is plain functions over dicts so that a request costs one ``json.dumps`` and no
framework machinery beyond aiohttp's low-level server.

Error bodies follow the API version of the route (the path's ``v1``/``v2`` segment): a handler
raises :class:`D6Failure` (or :func:`validation_failed`, :func:`not_found`, ...) without caring
which version it serves, and the dispatcher renders it as ``{"success": false, "message",
"validation_errors"?}`` on v2 routes and as ``{"error", "error_description"}`` on v1 routes. The
dispatcher does the same for what it answers itself (bad credentials, 429, a bad id in the
path, a school that has not authorised us), so a v1 route plugged into ``app.ROUTES`` gets v1
bodies, authentication and rate limiting with no code of its own. ``route_not_found`` is v1-shaped
on every version, as the live service answers it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


V1, V2 = "v1", "v2"
# v1's "Errors and Bad Requests" page: ``error`` is the HTTP status name (d6 writes "Not found").
V1_STATUS_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class D6Reply(Exception):
    """Raised inside a handler to answer at once with a finished d6 response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class D6Failure(D6Reply):
    """A d6 error answered in the shape of the route's API version (see the module docstring).

    :param status: HTTP status.
    :param message: the v2 ``message`` and, unless *description* is given, the v1
        ``error_description`` (for validation failures v1 joins the field messages instead).
    :param error: the v1 ``error`` (default: the status name, e.g. ``"Not found"``).
    :param description: the v1 ``error_description`` when it differs from *message*.
    :param validation_errors: field to message, for validation failures.
    :param headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error: str | None = None,
        description: str | None = None,
        validation_errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        Exception.__init__(self, status)
        self.status = status
        self.message = message
        self.error = error
        self.description = description
        self.validation_errors = dict(validation_errors or {})
        self.headers = dict(headers or {})

    @property
    def response(self) -> web.Response:  # type: ignore[override]
        """The v2 rendering (what code that predates versioned errors reads)."""
        return self.render(V2)

    def render(self, version: str) -> web.Response:
        """Build the response in the error shape of API *version* (``"v1"`` or any other)."""
        if version == V1:
            description = self.description
            if description is None:
                description = (
                    " ".join(self.validation_errors.values())
                    if self.validation_errors
                    else self.message
                )
            error = self.error or V1_STATUS_NAMES.get(self.status, "Error")
            return v1_error(self.status, error, description, self.headers)
        return error_response(self.status, self.message, self.validation_errors, self.headers)


def api_version(path: str) -> str:
    """Return the API version segment of a d6 path (``/api/v1/...`` -> ``"v1"``; else ``"v2"``)."""
    parts = path.split("/", 3)
    return V1 if len(parts) > 2 and parts[2] == V1 else V2


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Serialise *body* once and wrap it in a response.

    :param body: JSON-safe value.
    :param status: HTTP status.
    :param headers: extra response headers.
    """
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON_TYPE,
        headers=headers,
    )


def error_response(
    status: int,
    message: str,
    validation_errors: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Build a v2 error body: ``{"success": false, "message", "validation_errors"?}``.

    :param status: HTTP status.
    :param message: d6's message.
    :param validation_errors: field to message, only for validation failures.
    :param headers: extra response headers.
    """
    body: dict[str, Any] = {"success": False, "message": message}
    if validation_errors:
        body["validation_errors"] = dict(validation_errors)
    body.update(extra)
    return json_response(body, status, headers)


def v1_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Build a v1 error body: ``{"error", "error_description"}``."""
    return json_response({"error": error, "error_description": description}, status, headers)


def validation_failed(errors: Mapping[str, str]) -> D6Failure:
    """Return the 400 "Validation Failed" failure for *errors* (field to message).

    v1 routes answer ``{"error": "Bad Request", "error_description": <the field messages>}``.
    """
    return D6Failure(400, "Validation Failed", validation_errors=errors)


def not_found(message: str) -> D6Failure:
    """Return a 404 failure (v1: ``{"error": "Not found", "error_description": message}``)."""
    return D6Failure(404, message)


# What the dispatcher answers itself, in both versions' shapes.
NOT_AUTHORISED = "Client has not authorised access"
# v1 data pages: {"error": "Unauthorized", "error_description": "Client access not authorised"}.
V1_NOT_AUTHORISED = "Client access not authorised"
BAD_CREDENTIALS = "Invalid username or password"
TOO_MANY = "Too Many Attempts."


def bad_credentials() -> D6Failure:
    """401 for a wrong username or password.

    🔎 d6's text for this is not documented; the lookup pages show "Request not authorised" for a
    401, but a client could not tell that from a school's refusal, so the sandbox says what it is.
    """
    return D6Failure(401, BAD_CREDENTIALS)


def rate_limited(retry_after: str) -> D6Failure:
    """429 with ``Retry-After`` (the live body is a [gap]; Laravel's wording is used)."""
    return D6Failure(429, TOO_MANY, headers={"Retry-After": retry_after})


def not_authorised() -> D6Failure:
    """401: the school has not authorised the integrator (or its integration is not active)."""
    return D6Failure(401, NOT_AUTHORISED, description=V1_NOT_AUTHORISED)


def not_activated(api_type_name: str) -> D6Failure:
    """The v1 "Integration not activated" refusal for one module (e.g. ``"Admin+ API"``).

    ❌ Its HTTP status is not documented (401 or 403); the sandbox answers 403, which a client
    tells apart from the 401 of a school that has not authorised us.
    """
    return D6Failure(
        403,
        "Integration not activated",
        error="Integration not activated",
        description=(
            f"Please activate the {api_type_name} for this client before making this request"
        ),
    )


def route_not_found() -> web.Response:
    """Answer an unknown route the way the live service does (v1-shaped on every version)."""
    return v1_error(404, "route_not_found", "The requested route was not found.")


# ---------------------------------------------------------------------------------------------
# Query and body parameters


_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize() if name.islower() else name


_INT_TEXT = re.compile(r"-?[0-9]{1,18}\Z")


def is_int_text(text: str) -> bool:
    """Say whether *text* is an integer as d6 reads one: ASCII digits, an optional minus.

    ``str.isdigit`` is not enough: it accepts ``"\\u00b2"`` (which ``int`` refuses) and other
    scripts' digits (which ``int`` reads: Arabic-Indic ``"\\u0661\\u0660\\u0660\\u0660"`` would
    be school 1000). At most 18 digits.
    """
    return _INT_TEXT.match(text) is not None


def parse_int(value: Any, name: str, errors: dict[str, str]) -> int | None:
    """Return *value* as an int, or record d6's "must be an integer" message under *name*.

    Accepts ints and strings of digits (d6 casts both); refuses booleans and floats.
    """
    if isinstance(value, bool):
        errors[name] = f"The {name} must be an integer."
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if is_int_text(text):
            return int(text)
    errors[name] = f"The {name} must be an integer."
    return None


def parse_bool(value: Any, name: str, errors: dict[str, str]) -> bool | None:
    """Return *value* as a bool, accepting ``1``/``0``/``true``/``false`` as strings or JSON."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    errors[name] = f"The {_label(name)} must be a boolean."
    return None


def parse_date(value: Any, name: str, errors: dict[str, str]) -> dt.date | None:
    """Return *value* (``YYYY-MM-DD``) as a date, or record d6's date-format message."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    errors[name] = f"The {_label(name)} is not valid date format. Expected format is 'Y-m-d'."
    return None


def query_filters(
    query: Mapping[str, str],
    ints: Sequence[str] = (),
    bools: Sequence[str] = (),
    dates: Sequence[str] = (),
) -> dict[str, Any]:
    """Parse the documented filters of one endpoint; raise a 400 naming every bad one.

    :param query: the request's query string.
    :param ints: names of integer filters.
    :param bools: names of boolean filters.
    :param dates: names of ``YYYY-MM-DD`` filters.
    """
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for name in ints:
        if name in query:
            parsed[name] = parse_int(query[name], name, errors)
    for name in bools:
        if name in query:
            parsed[name] = parse_bool(query[name], name, errors)
    for name in dates:
        if name in query:
            parsed[name] = parse_date(query[name], name, errors)
    if errors:
        raise validation_failed(errors)
    return parsed


# ---------------------------------------------------------------------------------------------
# Cursor pagination


def encode_cursor(last_id: int, backward: bool) -> str:
    """Encode a cursor the way d6's look: base64 of ``{"id": ..., "_backward": ...}``."""
    raw = json.dumps({"id": last_id, "_backward": backward}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, bool]:
    """Decode a cursor; raise a 400 when it is not one this sandbox issued."""
    try:
        # Accept standard and URL-safe base64, padded or not: clients may re-encode it.
        padded = cursor.replace("+", "-").replace("/", "_").rstrip("=")
        padded += "=" * (-len(padded) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(data["id"]), bool(data["_backward"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise validation_failed({"cursor": "The cursor is invalid."}) from None


def paginate(
    items: Sequence[Any],
    keys: Sequence[int],
    query: Mapping[str, str],
    settings: Mapping[str, int],
    render: Callable[[Any], Any] = lambda item: item,
) -> web.Response:
    """Answer one page of *items* (sorted ascending by *keys*) in d6's envelope.

    :param items: the filtered collection, in ascending key order.
    :param keys: the ascending integer key of each item (what the cursor remembers).
    :param query: the request's query string (``cursor``, ``limit``, ``reverse_order``).
    :param settings: ``default_limit`` and ``max_allowed_limit``.
    :param render: turns an item into its JSON record (only for the items on the page).
    """
    errors: dict[str, str] = {}
    default_limit = settings["default_limit"]
    max_limit = settings["max_allowed_limit"]
    limit = default_limit
    if "limit" in query:
        limit = parse_int(query["limit"], "limit", errors) or 0
        if "limit" not in errors and not 1 <= limit <= max_limit:
            errors["limit"] = f"The limit must be between 1 and {max_limit}."
    reverse = False
    if "reverse_order" in query:
        reverse = bool(parse_bool(query["reverse_order"], "reverse_order", errors))
    if errors:
        raise validation_failed(errors)
    if query.get("cursor"):
        last_id, reverse = decode_cursor(query["cursor"])
        if reverse:
            stop = bisect_left(keys, last_id)
            start = max(0, stop - limit)
        else:
            start = bisect_right(keys, last_id)
            stop = min(len(items), start + limit)
    elif reverse:
        stop = len(items)
        start = max(0, stop - limit)
    else:
        start, stop = 0, min(len(items), limit)
    if reverse:
        page = [render(items[i]) for i in range(stop - 1, start - 1, -1)]
        more = start > 0
        last_key = keys[start] if page else 0
    else:
        page = [render(items[i]) for i in range(start, stop)]
        more = stop < len(items)
        last_key = keys[stop - 1] if page else 0
    meta: dict[str, Any] = {"limit": limit, "max_allowed_limit": max_limit}
    if more:
        meta["next_cursor"] = encode_cursor(last_key, reverse)
    return json_response({"data": page, "meta": meta})


def plain_list(records: list[Any]) -> web.Response:
    """Answer an unpaginated collection: ``{"data": [...]}``."""
    return json_response({"data": records})


def yes_no(flag: bool) -> str:
    """Render a flag the way d6 does."""
    return "Yes" if flag else "No"


class RequestContext:
    """What a route handler sees of one d6 request.

    ``version`` is the route's API version (``"v1"``/``"v2"``); ``school_id`` is the
    ``HTTP-X-SCHOOLID`` school of a v2 school-scoped route, or the path's school of a v1 route
    declared with ``school_in_path`` (then ``item_id`` is ``None``).
    """

    __slots__ = (
        "item_id",
        "method",
        "path",
        "query",
        "raw_body",
        "sandbox",
        "school_id",
        "version",
    )

    def __init__(
        self,
        sandbox: Any,
        method: str,
        path: str,
        query: Mapping[str, str],
        item_id: int | None,
        school_id: int | None,
        raw_body: bytes,
        version: str = V2,
    ) -> None:
        self.sandbox = sandbox
        self.method = method
        self.path = path
        self.query = query
        self.item_id = item_id
        self.school_id = school_id
        self.raw_body = raw_body
        self.version = version

    def json_body(self) -> Any:
        """Parse the request body as JSON; an empty body is ``{}``; anything else is a 400."""
        if not self.raw_body.strip():
            return {}
        try:
            return json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            raise D6Failure(400, "The request body is not valid JSON.") from None

    @property
    def page_settings(self) -> dict[str, int]:
        """Return the current ``default_limit`` and ``max_allowed_limit``."""
        return self.sandbox.page_settings


Handler = Callable[[RequestContext], Awaitable[web.Response]]


@dataclass(frozen=True)
class Route:
    """One d6 path: handlers for the collection and (when it has ``/{id}``) for one item.

    Register routes in ``d6_sandbox.app.ROUTES`` under their path without ``/api/`` (for example
    ``"v1/adminplus/learners"``). Every route gets, before its handler runs: authentication, the
    per-credential rate limit, ``route_not_found`` for a method or form it does not serve, the
    integer check of the path id, and error bodies in its version's shape.

    :param methods: method to handler for the collection path.
    :param item_methods: method to handler for ``path/{id}``.
    :param school_scoped: v2 routes that need the ``HTTP-X-SCHOOLID`` header (checked: an
        integer, a school that authorised us and has an activated integration).
    :param id_name: the name of the path id in validation messages.
    :param school_in_path: v1 data routes whose last path segment is the school
        (``/v1/adminplus/learners/{school_login_id}``): the school must exist and have
        authorised *api_type_id* (else 401 "Client access not authorised") and, when
        *require_activation*, have it activated (else "Integration not activated"); the
        handler then finds it in ``ctx.school_id``. Declare the handlers in *item_methods*
        (the path without a school answers ``route_not_found``, as live).
    :param api_type_id: the module such a route belongs to (8 Admin+, 9 Curriculum+).
    :param require_activation: whether the module must be activated, not only authorised.
    """

    methods: dict[str, Handler]
    item_methods: dict[str, Handler] = field(default_factory=dict)
    school_scoped: bool = True
    id_name: str = "id"
    school_in_path: bool = False
    api_type_id: int | None = None
    require_activation: bool = True
