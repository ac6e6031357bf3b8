"""Debtor notes and promises to pay: storage and the validation rules d6 documents."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from d6_sandbox import names
from d6_sandbox.data import SchoolBook
from d6_sandbox.protocol import parse_date, parse_int, validation_failed

NOTE_TYPES = dict(names.NOTE_TYPES)
COMMUNICATION_TYPES = dict(names.COMMUNICATION_TYPES)
PROMISE_TO_PAY, INTERNAL_NOTE = 2, 3
STATUSES = ("Created", "Deleted")
# Only the school sets these; d6 refuses them from an integrator.
SCHOOL_ONLY = ("amount_paid", "promise_completed")


def add_note(
    book: SchoolBook, fields: dict[str, Any], promises: list[dict[str, Any]]
) -> dict[str, Any]:
    """Store a new note (fields already validated) with its promises; return the stored note.

    :param book: the school's book.
    :param fields: ``accountable_person_id``, ``date``, ``note_type_id``,
        ``communication_type_id``, ``note``.
    :param promises: items with ``date_promised`` (date) and ``amount_promised`` (string).
    """
    person = book.person_by_id[fields["accountable_person_id"]]
    note_id = book.next_note_id
    book.next_note_id += 1
    note: dict[str, Any] = {"note_id": note_id}
    _apply_person(note, person)
    note["date"] = fields["date"].isoformat()
    _apply_types(note, fields["note_type_id"], fields.get("communication_type_id"))
    note["note"] = fields.get("note") or ""
    note["status"] = "Created"
    book.notes[note_id] = note
    for item in promises:
        add_promise(book, note, item)
    return note


def add_promise(book: SchoolBook, note: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Store a new promise to pay under *note*."""
    promise_id = book.next_promise_id
    book.next_promise_id += 1
    promise = {
        "promise_to_pay_id": promise_id,
        "note_id": note["note_id"],
        "accountable_person_id": note["accountable_person_id"],
        "accountable_person": note["accountable_person"],
        "debtor_code": note["debtor_code"],
        "debtor_reference": note["debtor_reference"],
        "date_promised": item["date_promised"].isoformat(),
        "amount_promised": item["amount_promised"],
        "amount_paid": "0.00",
        "promise_completed": "No",
    }
    book.promises[promise_id] = promise
    return promise


def _apply_person(note: dict[str, Any], person: dict[str, Any]) -> None:
    note["accountable_person_id"] = person["accountable_person_id"]
    note["accountable_person"] = f"{person['first_name']} {person['last_name']}"
    note["debtor_code"] = person["debtor_code"]
    note["debtor_reference"] = person["debtor_reference"]


def _apply_types(
    note: dict[str, Any], note_type_id: int, communication_type_id: int | None
) -> None:
    note["note_type_id"] = note_type_id
    note["note_type"] = NOTE_TYPES[note_type_id]
    note["communication_type_id"] = communication_type_id
    note["communication_type"] = (
        COMMUNICATION_TYPES.get(communication_type_id) if communication_type_id else None
    )


def note_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """Return the dates a note may carry: the start of last year to the end of next year."""
    return dt.date(today.year - 1, 1, 1), dt.date(today.year + 1, 12, 31)


def promise_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """Return the dates a promise may carry: the start of this year to the end of next year."""
    return dt.date(today.year, 1, 1), dt.date(today.year + 1, 12, 31)


def _check_date(
    value: Any, name: str, window: tuple[dt.date, dt.date], errors: dict[str, str]
) -> dt.date | None:
    parsed = parse_date(value, name, errors)
    if parsed is not None and not window[0] <= parsed <= window[1]:
        errors[name] = f"The {name} must be a date between {window[0]} and {window[1]}."
        return None
    return parsed


def _check_amount(value: Any, name: str, errors: dict[str, str]) -> str | None:
    # d6 keeps money as decimal strings; a JSON number is accepted and normalised, a float
    # with more than two places is not.
    try:
        amount = (
            Decimal(str(value))
            if isinstance(value, (str, int)) and not isinstance(value, bool)
            else None
        )
        if amount is None and isinstance(value, float):
            amount = Decimal(repr(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:
        errors[name] = f"The {name} must be a positive amount with at most two decimals."
        return None
    return f"{amount.quantize(Decimal('0.01'))}"


def validate_note_fields(
    body: dict[str, Any], book: SchoolBook, today: dt.date, *, partial: bool, errors: dict[str, str]
) -> dict[str, Any]:
    """Validate the scalar note fields of a Create (``partial=False``) or Update Note body."""
    fields: dict[str, Any] = {}
    for name in ("accountable_person_id", "date", "note_type_id"):
        if not partial and body.get(name) in (None, ""):
            errors[name] = f"The {name.replace('_', ' ')} field is required."
    for name in SCHOOL_ONLY:
        if name in body:
            errors[name] = f"The {name} field is prohibited."
    if body.get("accountable_person_id") not in (None, ""):
        pid = parse_int(body["accountable_person_id"], "accountable_person_id", errors)
        if pid is not None and pid not in book.person_by_id:
            errors["accountable_person_id"] = "The selected accountable person id is invalid."
        fields["accountable_person_id"] = pid
    if body.get("date") not in (None, ""):
        fields["date"] = _check_date(body["date"], "date", note_window(today), errors)
    if body.get("note_type_id") not in (None, ""):
        type_id = parse_int(body["note_type_id"], "note_type_id", errors)
        if type_id is not None and type_id not in NOTE_TYPES:
            errors["note_type_id"] = "The selected note type id is invalid."
        fields["note_type_id"] = type_id
    if body.get("communication_type_id") not in (None, ""):
        comm_id = parse_int(body["communication_type_id"], "communication_type_id", errors)
        if comm_id is not None and comm_id not in COMMUNICATION_TYPES:
            errors["communication_type_id"] = "The selected communication type id is invalid."
        fields["communication_type_id"] = comm_id
    if "note" in body:
        if body["note"] is not None and not isinstance(body["note"], str):
            errors["note"] = "The note must be a string."
        elif body["note"] is not None and len(body["note"]) > 5000:
            errors["note"] = "The note may not be greater than 5000 characters."
        else:
            fields["note"] = body["note"] or ""
    if partial and "status" in body:
        if body["status"] not in STATUSES:
            errors["status"] = "The selected status is invalid."
        else:
            fields["status"] = body["status"]
    return fields


def validate_promise_items(
    items: Any, existing: dict[int, dict[str, Any]], today: dt.date, errors: dict[str, str]
) -> list[dict[str, Any]]:
    """Validate ``promise_to_pays`` items; *existing* maps this note's promise ids to promises.

    Items with ``promise_to_pay_id`` change that promise; others create one, and a new promise
    equal in date and amount to another (existing or in the same body) is refused.
    """
    if not isinstance(items, list):
        errors["promise_to_pays"] = "The promise to pays must be an array."
        return []
    window = promise_window(today)
    seen = {(p["date_promised"], p["amount_promised"]) for p in existing.values()}
    parsed = []
    for index, item in enumerate(items):
        prefix = f"promise_to_pays.{index}"
        if not isinstance(item, dict):
            errors[prefix] = f"The {prefix} must be an object."
            continue
        for name in SCHOOL_ONLY:
            if name in item:
                errors[f"{prefix}.{name}"] = f"The {prefix}.{name} field is prohibited."
        result: dict[str, Any] = {}
        promise_id = None
        if item.get("promise_to_pay_id") is not None:
            promise_id = parse_int(item["promise_to_pay_id"], f"{prefix}.promise_to_pay_id", errors)
            if promise_id is not None and promise_id not in existing:
                errors[f"{prefix}.promise_to_pay_id"] = (
                    f"The selected {prefix}.promise_to_pay_id is invalid."
                )
            result["promise_to_pay_id"] = promise_id
        for name in ("date_promised", "amount_promised"):
            if item.get(name) in (None, "") and promise_id is None:
                errors[f"{prefix}.{name}"] = f"The {prefix}.{name} field is required."
        if item.get("date_promised") not in (None, ""):
            result["date_promised"] = _check_date(
                item["date_promised"], f"{prefix}.date_promised", window, errors
            )
        if item.get("amount_promised") not in (None, ""):
            result["amount_promised"] = _check_amount(
                item["amount_promised"], f"{prefix}.amount_promised", errors
            )
        if promise_id is None and result.get("date_promised") and result.get("amount_promised"):
            key = (result["date_promised"].isoformat(), result["amount_promised"])
            if key in seen:
                errors[prefix] = (
                    "A promise to pay with this date_promised and amount_promised already exists."
                )
            seen.add(key)
        parsed.append(result)
    return parsed


def validate_create(
    body: Any, book: SchoolBook, today: dt.date
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a Create Note body; raise d6's 400 with every failure."""
    if not isinstance(body, dict):
        raise validation_failed({"body": "The request body must be a JSON object."})
    errors: dict[str, str] = {}
    fields = validate_note_fields(body, book, today, partial=False, errors=errors)
    note_type_id = fields.get("note_type_id")
    if (
        note_type_id not in (None, INTERNAL_NOTE)
        and "communication_type_id" not in fields
        and "communication_type_id" not in errors
    ):
        errors["communication_type_id"] = (
            "The communication type id field is required unless note type id is 3."
        )
    items = body.get("promise_to_pays")
    promises: list[dict[str, Any]] = []
    if note_type_id == PROMISE_TO_PAY:
        if not items:
            errors["promise_to_pays"] = (
                "The promise to pays field is required when note type id is 2."
            )
        else:
            promises = validate_promise_items(items, {}, today, errors)
    elif items:
        errors["promise_to_pays"] = (
            "The promise to pays field is prohibited unless note type id is 2."
        )
    if errors:
        raise validation_failed(errors)
    return fields, promises


def apply_update(body: Any, book: SchoolBook, note: dict[str, Any], today: dt.date) -> None:
    """Validate an Update Note body and apply it to *note*; raise d6's 400 on any failure."""
    if not isinstance(body, dict):
        raise validation_failed({"body": "The request body must be a JSON object."})
    errors: dict[str, str] = {}
    fields = validate_note_fields(body, book, today, partial=True, errors=errors)
    own = {pid: p for pid, p in book.promises.items() if p["note_id"] == note["note_id"]}
    items = body.get("promise_to_pays")
    promises = validate_promise_items(items, own, today, errors) if items else []
    note_type_id = fields.get("note_type_id", note["note_type_id"])
    communication_type_id = fields.get("communication_type_id", note["communication_type_id"])
    if (
        note_type_id != INTERNAL_NOTE
        and not communication_type_id
        and "communication_type_id" not in errors
    ):
        errors["communication_type_id"] = (
            "The communication type id field is required unless note type id is 3."
        )
    if (
        note_type_id == PROMISE_TO_PAY
        and not own
        and not promises
        and "promise_to_pays" not in errors
    ):
        errors["promise_to_pays"] = "The promise to pays field is required when note type id is 2."
    if note_type_id != PROMISE_TO_PAY and any("promise_to_pay_id" not in p for p in promises):
        errors["promise_to_pays"] = (
            "The promise to pays field is prohibited unless note type id is 2."
        )
    if errors:
        raise validation_failed(errors)
    if "accountable_person_id" in fields:
        _apply_person(note, book.person_by_id[fields["accountable_person_id"]])
    if "date" in fields:
        note["date"] = fields["date"].isoformat()
    _apply_types(
        note,
        note_type_id,
        communication_type_id
        if note_type_id != INTERNAL_NOTE or "communication_type_id" in fields
        else note["communication_type_id"],
    )
    if "note" in fields:
        note["note"] = fields["note"]
    if "status" in fields:
        note["status"] = fields["status"]
    for item in promises:
        if "promise_to_pay_id" in item:
            promise = book.promises[item["promise_to_pay_id"]]
            if item.get("date_promised"):
                promise["date_promised"] = item["date_promised"].isoformat()
            if item.get("amount_promised"):
                promise["amount_promised"] = item["amount_promised"]
        else:
            add_promise(book, note, item)
    for promise in own.values():  # keep denormalised person fields in step with the note
        for name in (
            "accountable_person_id",
            "accountable_person",
            "debtor_code",
            "debtor_reference",
        ):
            promise[name] = note[name]
