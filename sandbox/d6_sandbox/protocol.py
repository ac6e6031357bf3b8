"""d6's wire conventions shared by every sandbox route: bodies, errors, parameters, cursors.

Everything here is plain functions over dicts so that a request costs one ``json.dumps`` and no
framework machinery beyond aiohttp's low-level server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


class D6Reply(Exception):
    """Raised inside a handler to answer at once with a finished d6 response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


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


def v1_error(status: int, error: str, description: str) -> web.Response:
    """Build a v1 error body: ``{"error", "error_description"}``."""
    return json_response({"error": error, "error_description": description}, status)


def validation_failed(errors: Mapping[str, str]) -> D6Reply:
    """Return the 400 "Validation Failed" reply for *errors* (field to message)."""
    return D6Reply(error_response(400, "Validation Failed", errors))


def not_found(message: str) -> D6Reply:
    """Return a 404 reply in d6's v2 shape."""
    return D6Reply(error_response(404, message))


def route_not_found() -> web.Response:
    """Answer an unknown route the way the live service does."""
    return v1_error(404, "route_not_found", "The requested route was not found.")


NOT_AUTHORISED = "Client has not authorised access"

# ---------------------------------------------------------------------------------------------
# Query and body parameters


_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize() if name.islower() else name


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
        if text.lstrip("-").isdigit():
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
    """What a route handler sees of one d6 request."""

    __slots__ = ("item_id", "method", "path", "query", "raw_body", "sandbox", "school_id")

    def __init__(
        self,
        sandbox: Any,
        method: str,
        path: str,
        query: Mapping[str, str],
        item_id: int | None,
        school_id: int | None,
        raw_body: bytes,
    ) -> None:
        self.sandbox = sandbox
        self.method = method
        self.path = path
        self.query = query
        self.item_id = item_id
        self.school_id = school_id
        self.raw_body = raw_body

    def json_body(self) -> Any:
        """Parse the request body as JSON; an empty body is ``{}``; anything else is a 400."""
        if not self.raw_body.strip():
            return {}
        try:
            return json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            raise D6Reply(error_response(400, "The request body is not valid JSON.")) from None

    @property
    def page_settings(self) -> dict[str, int]:
        """Return the current ``default_limit`` and ``max_allowed_limit``."""
        return self.sandbox.page_settings
