"""Check caller input before any request: ids, filters, and debtor note fields.

Every refusal is a ``D6InputError`` naming the field and what would have been accepted, so a
mistake in a DAG fails fast and readably instead of as a d6 400 (or, worse, a silent no-op).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.hooks._endpoints import Endpoint

NOTE_TYPE_TEXT, NOTE_TYPE_PROMISE, NOTE_TYPE_INTERNAL = 1, 2, 3
NOTE_STATUSES = ("Created", "Deleted")
# Only the school may record payments against a promise; an integrator must never send these.
SCHOOL_ONLY_FIELDS = ("amount_paid", "promise_completed")

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_MONEY = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def query_bool(value: bool) -> str:
    """Encode a boolean for a d6 query string.

    The encoding is a [gap] in the d6 docs; their samples send ``1``. Keeping it in this one
    function means a change, if d6 ever proves to want ``true``, is one line. JSON bodies send
    real ``true``/``false``.
    """
    return "1" if value else "0"


def check_id(value: Any, field: str) -> int:
    """Return *value* as a positive int id, or raise ``D6InputError`` naming *field*."""
    if isinstance(value, bool):
        raise D6InputError(
            f"expected a positive integer id, got {value!r}", field=field, allowed="integer >= 1"
        )
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise D6InputError(
            f"expected a positive integer id, got {value!r}", field=field, allowed="integer >= 1"
        )
    if number < 1:
        raise D6InputError(
            f"expected a positive integer id, got {value!r}", field=field, allowed="integer >= 1"
        )
    return number


def check_bool(value: Any, field: str) -> bool:
    """Return *value* as a bool (accepting 1/0 and true/false/yes/no strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise D6InputError(f"expected a boolean, got {value!r}", field=field, allowed="true/false")


def check_date(value: Any, field: str) -> date:
    """Return *value* (a date, datetime or ``YYYY-MM-DD``/ISO string) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return (
                date.fromisoformat(text[:10])
                if len(text) > 10 and text[10] in "T "
                else date.fromisoformat(text)
            )
        except ValueError:
            pass
    raise D6InputError(
        f"expected a date, got {value!r}", field=field, allowed="YYYY-MM-DD, date or datetime"
    )


def check_filters(endpoint: Endpoint, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Validate *filters* for *endpoint* and return them encoded as d6 query parameters.

    ``None`` values mean "not given" and are dropped, so templated operator arguments can pass
    them straight through.
    """
    allowed = endpoint.filters
    params: dict[str, Any] = {}
    for name, value in filters.items():
        kind = allowed.get(name)
        if kind is None:
            choices = ", ".join(sorted(allowed)) or "none"
            raise D6InputError(f"unknown filter for {endpoint.name}", field=name, allowed=choices)
        if value is None:
            continue
        if kind == "int":
            params[name] = check_id(value, name)
        elif kind == "bool":
            params[name] = query_bool(check_bool(value, name))
        elif kind == "date":
            params[name] = check_date(value, name).isoformat()
        elif kind == "code":
            params[name] = _check_code(value, name)
        elif isinstance(kind, tuple):
            if value not in kind:
                raise D6InputError(
                    f"unexpected value {value!r}", field=name, allowed="/".join(kind)
                )
            params[name] = value
    if "end_date" in params:
        if "start_date" not in params:
            raise D6InputError(
                "end_date needs start_date", field="end_date", allowed="start_date and end_date"
            )
        if params["end_date"] < params["start_date"]:
            raise D6InputError(
                "end_date is before start_date", field="end_date", allowed=">= start_date"
            )
    return params


def _check_code(value: Any, field: str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise D6InputError(
        f"expected a debtor code, got {value!r}", field=field, allowed="non-empty string or integer"
    )


def check_money(value: Any, field: str) -> str:
    """Return *value* as an exact decimal string greater than zero (floats are refused)."""
    if isinstance(value, Decimal):
        text = format(value.quantize(Decimal("0.01")), "f") if value.is_finite() else "NaN"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value}.00"
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise D6InputError(
            f"expected an amount as a decimal string, got {value!r}",
            field=field,
            allowed='e.g. "150.00"',
        )
    if not _MONEY.match(text):
        raise D6InputError(f"not a decimal amount: {value!r}", field=field, allowed='e.g. "150.00"')
    try:
        if Decimal(text) <= 0:
            raise D6InputError(
                f"must be greater than zero, got {value!r}", field=field, allowed="> 0"
            )
    except InvalidOperation:
        raise D6InputError(
            f"not a decimal amount: {value!r}", field=field, allowed='e.g. "150.00"'
        ) from None
    return text


def _check_window(value: Any, field: str, first: date, last: date) -> str:
    day = check_date(value, field)
    if not first <= day <= last:
        raise D6InputError(
            f"{day.isoformat()} is outside the window d6 accepts",
            field=field,
            allowed=f"{first.isoformat()} .. {last.isoformat()}",
        )
    return day.isoformat()


def check_promises(promises: Any, *, today: date, updating: bool) -> list[dict[str, Any]]:
    """Validate promise-to-pay items and return them as JSON body items."""
    if not isinstance(promises, (list, tuple)) or (not promises and not updating):
        raise D6InputError(
            "expected a non-empty list of promises",
            field="promise_to_pays",
            allowed="[{date_promised, amount_promised}, ...]",
        )
    first, last = date(today.year, 1, 1), date(today.year + 1, 12, 31)
    items = []
    for index, item in enumerate(promises):
        where = f"promise_to_pays[{index}]"
        if not isinstance(item, Mapping):
            raise D6InputError(
                "expected an object", field=where, allowed="{date_promised, amount_promised}"
            )
        for forbidden in SCHOOL_ONLY_FIELDS:
            if forbidden in item:
                raise D6InputError(
                    "only the school may set this",
                    field=f"{where}.{forbidden}",
                    allowed="date_promised, amount_promised"
                    + (", promise_to_pay_id" if updating else ""),
                )
        known = {"date_promised", "amount_promised"} | (
            {"promise_to_pay_id"} if updating else set()
        )
        unknown = sorted(set(item) - known)
        if unknown:
            raise D6InputError(
                "unknown promise field",
                field=f"{where}.{unknown[0]}",
                allowed=", ".join(sorted(known)),
            )
        body: dict[str, Any] = {}
        if "promise_to_pay_id" in item and item["promise_to_pay_id"] is not None:
            body["promise_to_pay_id"] = check_id(
                item["promise_to_pay_id"], f"{where}.promise_to_pay_id"
            )
        for key in ("date_promised", "amount_promised"):
            if item.get(key) is None and ("promise_to_pay_id" not in body):
                raise D6InputError("required", field=f"{where}.{key}", allowed="a value")
        if item.get("date_promised") is not None:
            body["date_promised"] = _check_window(
                item["date_promised"], f"{where}.date_promised", first, last
            )
        if item.get("amount_promised") is not None:
            body["amount_promised"] = check_money(
                item["amount_promised"], f"{where}.amount_promised"
            )
        items.append(body)
    return items


#: The note fields an integrator may send (Update Note also takes ``status``).
NOTE_FIELDS = (
    "accountable_person_id",
    "date",
    "note_type_id",
    "communication_type_id",
    "note",
    "promise_to_pays",
)


def check_note(fields: Mapping[str, Any], *, today: date, updating: bool = False) -> dict[str, Any]:
    """Validate Create Note (or, with *updating*, Update Note) fields and return the JSON body.

    :param fields: the note fields as given by the caller (None means "not given")
    :param today: the date the d6 windows are computed from
    :param updating: validate an Update Note body (every field optional, ``status`` allowed)
    """
    allowed = set(NOTE_FIELDS)
    if updating:
        allowed.add("status")
    for name in fields:
        if name in SCHOOL_ONLY_FIELDS:
            raise D6InputError(
                "only the school may set this", field=name, allowed=", ".join(sorted(allowed))
            )
        if name not in allowed:
            raise D6InputError("unknown note field", field=name, allowed=", ".join(sorted(allowed)))
    given = {k: v for k, v in fields.items() if v is not None}
    body: dict[str, Any] = {}
    if not updating:
        for required in ("accountable_person_id", "date", "note_type_id"):
            if required not in given:
                raise D6InputError("required to create a note", field=required, allowed="a value")
    for name in ("accountable_person_id", "note_type_id", "communication_type_id"):
        if name in given:
            body[name] = check_id(given[name], name)
    if "date" in given:
        body["date"] = _check_window(
            given["date"], "date", date(today.year - 1, 1, 1), date(today.year + 1, 12, 31)
        )
    if "note" in given:
        if not isinstance(given["note"], str):
            raise D6InputError(
                f"expected text, got {type(given['note']).__name__}",
                field="note",
                allowed="a string",
            )
        body["note"] = given["note"]
    note_type_id = body.get("note_type_id")
    if not updating and note_type_id != NOTE_TYPE_INTERNAL and "communication_type_id" not in body:
        raise D6InputError(
            "required unless the note is an internal note (note_type_id 3)",
            field="communication_type_id",
            allowed="a communication type id",
        )
    if "promise_to_pays" in given:
        body["promise_to_pays"] = check_promises(
            given["promise_to_pays"], today=today, updating=updating
        )
    elif not updating and note_type_id == NOTE_TYPE_PROMISE:
        raise D6InputError(
            "required for a promise-to-pay note (note_type_id 2)",
            field="promise_to_pays",
            allowed="[{date_promised, amount_promised}, ...]",
        )
    if "status" in given:
        if given["status"] not in NOTE_STATUSES:
            raise D6InputError(
                f"unexpected status {given['status']!r}",
                field="status",
                allowed="/".join(NOTE_STATUSES),
            )
        body["status"] = given["status"]
    if updating and not body:
        raise D6InputError("nothing to update", field="fields", allowed=", ".join(sorted(allowed)))
    return body
