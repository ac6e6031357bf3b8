"""Check and convert caller input before any request: one rule per type, for hooks and operators.

Every hook method and every operator argument goes through these functions, so a value means the
same thing wherever it is given. Every refusal is a :class:`~airflow_provider_d6.exceptions.
D6InputError` naming the field and what would have been accepted, raised before anything is sent,
so a mistake in a DAG fails fast and readably instead of as a d6 400 (or, worse, a silent no-op).

The rules:

- **integers and ids**: an ``int`` (never a ``bool``: ``True`` must not become school 1), or a
  string of plain ASCII decimal digits with nothing else but surrounding whitespace: no sign, no
  decimal point, no exponent, no non-ASCII digits (``"١٢٣"``, ``"²"``). Floats are refused, even
  ``1.0``. Ids are ``1 .. MAX_ID``.
- **booleans**: a ``bool``, the ints ``0``/``1``, or one of the strings ``true``, ``false``,
  ``yes``, ``no``, ``1``, ``0`` (any case, surrounding whitespace ignored). Nothing else: ``"on"``,
  ``"y"`` or ``"maybe"`` are refused rather than guessed.
- **dates**: a ``date``, a ``datetime`` (its date is used) or a string that is exactly
  ``YYYY-MM-DD``, optionally followed by an ISO time (``T`` or a space, ``HH:MM[:SS[.ffffff]]``
  and an optional ``Z`` or ``±HH:MM`` offset). Compact (``20260101``) and week
  (``2026-W01-1``) forms are refused.
- **choices**: a string equal to one of the choices, ignoring case and surrounding whitespace; the
  choice's canonical spelling is returned.
- **amounts**: an exact decimal (``Decimal``, ``int`` or a string such as ``"150.00"``, ASCII
  digits, at most two decimals) greater than zero; floats are refused.
- **structured text**: a list or dict given as JSON text, or as the Python literal Jinja renders
  a list into (single quotes), at most ``MAX_STRUCTURED_CHARS`` characters.
- **optional values**: where an argument is optional, ``None`` and the strings Jinja renders for a
  missing value (``"None"`` and ``""``) mean "not given".
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, overload

from airflow_provider_d6.exceptions import D6InputError

if TYPE_CHECKING:
    from airflow_provider_d6.hooks._endpoints import Endpoint

#: The largest id accepted. The d6 docs do not say how wide their ids are ([gap]); ids travel as
#: JSON numbers, so the largest integer every JSON reader keeps exactly is the bound.
MAX_ID = 2**53 - 1
#: The longest JSON or literal text parsed for a structured argument.
MAX_STRUCTURED_CHARS = 1_000_000
#: The longest debtor note text sent. The d6 docs give no limit ([gap]); 4,000 characters is the
#: widest text column SQL Server keeps in-row and far more than a note needs.
MAX_NOTE_CHARS = 4000
#: The longest wait, timeout or interval accepted, in seconds (a year).
MAX_SECONDS = 366 * 24 * 3600

NOTE_TYPE_TEXT, NOTE_TYPE_PROMISE, NOTE_TYPE_INTERNAL = 1, 2, 3
NOTE_STATUSES = ("Created", "Deleted")
# Only the school may record payments against a promise; an integrator must never send these.
SCHOOL_ONLY_FIELDS = ("amount_paid", "promise_completed")

#: The note fields an integrator may send (Update Note also takes ``status``).
NOTE_FIELDS = (
    "accountable_person_id",
    "date",
    "note_type_id",
    "communication_type_id",
    "note",
    "promise_to_pays",
)

BOOL_ALLOWED = "true, false, yes, no, 1 or 0"
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
# What Jinja renders for a missing optional value: ``{{ None }}`` is "None", an unset variable "".
_EMPTY_STRINGS = frozenset({"", "none"})
_DIGITS = re.compile(r"[0-9]+")
# Longer digit strings are refused before int() is asked to convert them.
_MAX_DIGITS = len(str(MAX_ID))
_MAX_TEXT_DIGITS = 32
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_MONEY_ALLOWED = 'a decimal string greater than zero, e.g. "150.00"'
_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")


def is_given(value: object) -> bool:
    """Return whether an argument carries a value (``None``, ``"None"`` and ``""`` do not)."""
    if value is None:
        return False
    return not (isinstance(value, str) and value.strip().lower() in _EMPTY_STRINGS)


@overload
def check_int(
    value: object,
    field: str,
    *,
    minimum: int = ...,
    maximum: int | None = ...,
    optional: Literal[False] = ...,
) -> int: ...
@overload
def check_int(
    value: object, field: str, *, minimum: int = ..., maximum: int | None = ..., optional: bool
) -> int | None: ...
def check_int(
    value: object,
    field: str,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    optional: bool = False,
) -> int | None:
    """Return *value* as an int between *minimum* and *maximum* (see the module's rules).

    :param value: the argument, native or rendered from a template.
    :param field: the argument's name, used in the error.
    :param minimum: the smallest accepted value (at least 0: signs are never accepted).
    :param maximum: the largest accepted value (``None``: no upper bound beyond the digit cap).
    :param optional: accept ``None`` (and the strings Jinja renders for it) and return ``None``.
    :raises D6InputError: naming *field* and the accepted range.
    """
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer {minimum}..{maximum}"
    if optional:
        allowed = f"{allowed} or None"
    if not is_given(value):
        if optional:
            return None
        raise D6InputError("a value is required", field=field, allowed=allowed)
    if isinstance(value, bool):
        raise D6InputError(f"got a boolean ({value!r})", field=field, allowed=allowed)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(text := value.strip()):
        if len(text) > _MAX_TEXT_DIGITS or len(text.lstrip("0")) > _MAX_DIGITS:
            raise D6InputError(f"{_show(value)} is out of range", field=field, allowed=allowed)
        number = int(text)
    else:
        raise D6InputError(f"{_show(value)} is not an integer", field=field, allowed=allowed)
    if number < minimum or (maximum is not None and number > maximum):
        raise D6InputError(f"{_show(number)} is out of range", field=field, allowed=allowed)
    return number


@overload
def check_id(value: object, field: str, *, optional: Literal[False] = ...) -> int: ...
@overload
def check_id(value: object, field: str, *, optional: bool) -> int | None: ...
def check_id(value: object, field: str, *, optional: bool = False) -> int | None:
    """Return *value* as a d6 id (an integer ``1 .. MAX_ID``), or raise naming *field*."""
    return check_int(value, field, minimum=1, maximum=MAX_ID, optional=optional)


@overload
def check_bool(value: object, field: str, *, optional: Literal[False] = ...) -> bool: ...
@overload
def check_bool(value: object, field: str, *, optional: bool) -> bool | None: ...
def check_bool(value: object, field: str, *, optional: bool = False) -> bool | None:
    """Return *value* as a bool: ``True``/``False``, 1/0 or true/false/yes/no/1/0 text.

    :param optional: accept ``None`` (and the strings Jinja renders for it) and return ``None``.
    :raises D6InputError: naming *field* and the accepted values.
    """
    allowed = f"{BOOL_ALLOWED} or None" if optional else BOOL_ALLOWED
    if not is_given(value):
        if optional:
            return None
        raise D6InputError("a value is required", field=field, allowed=allowed)
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
    raise D6InputError(f"{_show(value)} is not a boolean", field=field, allowed=allowed)


def check_seconds(
    value: object, field: str, *, minimum: float = 0.0, maximum: float = MAX_SECONDS
) -> float:
    """Return a duration in seconds: a finite number from *minimum* to *maximum*.

    Accepts an ``int``, a ``float``, a ``timedelta`` or a plain decimal string (``"30"``,
    ``"0.5"``: ASCII digits, what Jinja renders a number into). ``nan``, ``inf``, booleans, signs
    and exponents are refused.

    :param minimum: the shortest accepted duration.
    :param maximum: the longest accepted duration (:data:`MAX_SECONDS` by default).
    :raises D6InputError: naming *field* and the accepted range.
    """
    from datetime import timedelta

    allowed = f"a number of seconds from {minimum:g} to {maximum:.0f}"
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, bool):
        raise D6InputError(f"got a boolean ({value!r})", field=field, allowed=allowed)
    elif isinstance(value, int):
        # Compared as an int: float() of a 400-digit int would raise OverflowError.
        number = float(value) if abs(value) <= maximum else float("inf")
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and _SECONDS.fullmatch(text := value.strip()):
        number = float(text)
    else:
        raise D6InputError(f"{_show(value)} is not a number", field=field, allowed=allowed)
    # nan compares false with everything, so it is refused by the range test as well.
    if not minimum <= number <= maximum:
        raise D6InputError(f"{_show(value)} is out of range", field=field, allowed=allowed)
    return number


def query_bool(value: bool) -> str:
    """Encode a boolean for a d6 query string.

    The encoding is a [gap] in the d6 docs; their samples send ``1``. Keeping it in this one
    function means a change, if d6 ever proves to want ``true``, is one line. JSON bodies send
    real ``true``/``false``.
    """
    return "1" if value else "0"


def check_date(value: object, field: str) -> date:
    """Return *value* (a date, datetime, ``YYYY-MM-DD`` or ISO date-time string) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if _DATE.fullmatch(text):
                return date.fromisoformat(text)
            if _DATETIME.fullmatch(text):
                return datetime.fromisoformat(text).date()
        except ValueError:
            pass
    raise D6InputError(
        f"{_show(value)} is not a date",
        field=field,
        allowed="YYYY-MM-DD, a date or a datetime",
    )


def check_choice(value: object, field: str, choices: Iterable[str]) -> str:
    """Return the choice *value* names (case and surrounding whitespace ignored).

    :param choices: the accepted values, returned in their canonical spelling.
    :raises D6InputError: naming *field* and the choices.
    """
    options = list(choices)
    if isinstance(value, str):
        wanted = value.strip().lower()
        for option in options:
            if option.lower() == wanted:
                return option
    raise D6InputError(
        f"{_show(value)} is not accepted", field=field, allowed=", ".join(options) or "none"
    )


def check_code(value: object, field: str) -> int | str:
    """Return a debtor code: a non-empty string (stripped) or a non-negative int."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise D6InputError(
        f"expected a debtor code, got {_show(value)}",
        field=field,
        allowed="non-empty string or integer",
    )


def check_money(value: object, field: str) -> str:
    """Return *value* as an exact decimal string greater than zero (floats are refused)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise D6InputError(
                f"not a decimal amount: {_show(value)}", field=field, allowed=_MONEY_ALLOWED
            )
        text = format(value, "f")
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise D6InputError(
            f"expected an amount as a decimal string, got {_show(value)}",
            field=field,
            allowed=_MONEY_ALLOWED,
        )
    if not _MONEY.fullmatch(text):
        raise D6InputError(
            f"not a decimal amount: {_show(value)}", field=field, allowed=_MONEY_ALLOWED
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise D6InputError(
            f"not a decimal amount: {_show(value)}", field=field, allowed=_MONEY_ALLOWED
        ) from None
    if amount <= 0:
        raise D6InputError(
            f"must be greater than zero, got {_show(value)}", field=field, allowed="> 0"
        )
    return text if "." in text else f"{text}.00"


def parse_structured(value: object, field: str, allowed: str) -> Any:
    """Return *value*, parsing it first when it is JSON or Python-literal text.

    Jinja renders a list-valued param as its Python repr (single quotes) unless the DAG renders
    native objects, so both forms are read. Non-string values are returned unchanged for the
    caller's own type check.

    :param field: the argument's name, used in the error.
    :param allowed: what the argument should hold, used in the error.
    :raises D6InputError: when the text is too long, or neither JSON nor a literal.
    """
    if not isinstance(value, str):
        return value
    if len(value) > MAX_STRUCTURED_CHARS:
        raise D6InputError(
            f"is {len(value)} characters long",
            field=field,
            allowed=f"{allowed}, at most {MAX_STRUCTURED_CHARS} characters",
        )
    text = value.strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    # literal_eval raises these (and MemoryError on absurd nesting) for text that is no literal.
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise D6InputError(
            "is neither JSON nor a list literal", field=field, allowed=allowed
        ) from None


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
            params[name] = check_code(value, name)
        elif isinstance(kind, tuple):
            params[name] = check_choice(value, name, kind)
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


def _check_window(value: object, field: str, first: date, last: date) -> str:
    day = check_date(value, field)
    if not first <= day <= last:
        raise D6InputError(
            f"{day.isoformat()} is outside the window d6 accepts",
            field=field,
            allowed=f"{first.isoformat()} .. {last.isoformat()}",
        )
    return day.isoformat()


def check_promises(promises: object, *, today: date, updating: bool) -> list[dict[str, Any]]:
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
        unknown = sorted(str(key) for key in set(item) - known)
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
        if len(given["note"]) > MAX_NOTE_CHARS:
            raise D6InputError(
                f"is {len(given['note'])} characters long",
                field="note",
                allowed=f"at most {MAX_NOTE_CHARS} characters",
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
        body["status"] = check_choice(given["status"], "status", NOTE_STATUSES)
    if updating and not body:
        raise D6InputError("nothing to update", field="fields", allowed=", ".join(sorted(allowed)))
    return body


def _show(value: object) -> str:
    """Return a short representation of a refused value for an error message.

    ``repr`` escapes control characters, so a value cannot forge log lines; the length is capped
    so a huge value cannot flood the log.
    """
    if isinstance(value, int) and value.bit_length() > 192:
        # repr() of an int of more than 4,300 digits raises ValueError instead of returning text.
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


__all__ = [
    "BOOL_ALLOWED",
    "MAX_ID",
    "MAX_NOTE_CHARS",
    "MAX_SECONDS",
    "MAX_STRUCTURED_CHARS",
    "NOTE_FIELDS",
    "NOTE_STATUSES",
    "NOTE_TYPE_INTERNAL",
    "NOTE_TYPE_PROMISE",
    "NOTE_TYPE_TEXT",
    "SCHOOL_ONLY_FIELDS",
    "check_bool",
    "check_choice",
    "check_code",
    "check_date",
    "check_filters",
    "check_id",
    "check_int",
    "check_money",
    "check_note",
    "check_promises",
    "check_seconds",
    "is_given",
    "parse_structured",
    "query_bool",
]
