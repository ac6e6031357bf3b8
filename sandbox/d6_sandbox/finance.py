"""Finance+ debt-management routes as d6 documents them: lookups, notes, promises, reports, people."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from d6_sandbox import names
from d6_sandbox.data import SchoolBook, promise_record
from d6_sandbox.ledger import CATEGORY, DAY, LEARNER, PERSON, SELECTION_CACHE_SIZE
from d6_sandbox.notes import add_note, apply_update, validate_create
from d6_sandbox.protocol import (
    NOT_AUTHORISED,
    D6Reply,
    RequestContext,
    error_response,
    json_response,
    paginate,
    plain_list,
    query_filters,
    validation_failed,
)


def _book(ctx: RequestContext) -> SchoolBook:
    return ctx.sandbox.district.book(ctx.school_id)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _lookup(records: list[dict[str, Any]], label: str) -> Callable[[RequestContext], Any]:
    """Build the handler of an unpaginated lookup list with ``/{id}`` items."""

    async def handler(ctx: RequestContext) -> web.Response:
        if ctx.item_id is None:
            return plain_list(records)
        for record in records:
            if record["id"] == ctx.item_id:
                return json_response(record)
        return error_response(404, f"The {label} does not exist.")

    return handler


get_communication_types = _lookup(
    [{"id": i, "name": n} for i, n in names.COMMUNICATION_TYPES], "communication type"
)
get_note_types = _lookup([{"id": i, "name": n} for i, n in names.NOTE_TYPES], "note type")
get_transaction_types = _lookup(
    [{"id": i, "name": n} for i, n in names.TRANSACTION_TYPES], "transaction type"
)


async def get_transaction_categories(ctx: RequestContext) -> web.Response:
    """Get Transaction Category(s): per school, ids not contiguous."""
    return await _lookup(_book(ctx).categories, "transaction category")(ctx)


# -- notes and promises ---------------------------------------------------------------------------


async def notes(ctx: RequestContext) -> web.Response:
    """Get Note(s), Create Note, Update Note and Delete Note."""
    book = _book(ctx)
    district = ctx.sandbox.district
    if ctx.method == "POST":
        if ctx.item_id is not None:
            raise D6Reply(ctx.sandbox.route_not_found_response())
        fields, promises = validate_create(ctx.json_body(), book, district.today)
        note = add_note(book, fields, promises)
        return json_response(
            {
                "success": True,
                "message": "Note successfully created",
                "data": district.note_record(book, note, True),
            },
            201,
        )
    if ctx.method in ("PATCH", "DELETE") and ctx.item_id is None:
        return error_response(400, "The Note ID is required")
    if ctx.method == "DELETE":
        note = book.notes.get(ctx.item_id)
        if note is None or note["status"] == "Deleted":
            return error_response(404, "The note does not exist or has already been deleted.")
        note["status"] = "Deleted"
        return json_response({"status": "Deleted"})
    if ctx.method == "PATCH":
        note = book.notes.get(ctx.item_id)
        if note is None:
            return error_response(404, "The note does not exist.")
        apply_update(ctx.json_body(), book, note, district.today)
        return json_response(
            {
                "success": True,
                "message": "Note successfully updated",
                "data": district.note_record(book, note, True),
            }
        )
    filters = query_filters(
        ctx.query,
        ints=(
            "note_type_id",
            "communication_type_id",
            "accountable_person_id",
            "debtor_code",
            "year",
        ),
        bools=("include_deleted", "include_promise_to_pays"),
    )
    include_deleted = filters.pop("include_deleted", False)
    with_promises = filters.pop("include_promise_to_pays", False)
    if ctx.item_id is not None:
        note = book.notes.get(ctx.item_id)
        # A deleted note is gone unless asked for, as in the list.
        if note is None or (note["status"] == "Deleted" and not include_deleted):
            return error_response(404, "The note does not exist.")
        return json_response(district.note_record(book, note, with_promises))
    year = filters.pop("year", None)
    items = [
        n
        for n in book.notes.values()
        if (include_deleted or n["status"] != "Deleted")
        and (year is None or n["date"].startswith(f"{year:04d}-"))
        and all(_matches(n, k, v) for k, v in filters.items())
    ]
    return paginate(
        items,
        [n["note_id"] for n in items],
        ctx.query,
        ctx.page_settings,
        lambda n: district.note_record(book, n, with_promises),
    )


def _matches(record: dict[str, Any], name: str, value: int) -> bool:
    # debtor_code is a string of digits in records and an integer filter in the query.
    have = record.get(name)
    return have is not None and str(have) == str(value)


def _live_promises(book: SchoolBook) -> list[dict[str, Any]]:
    # Promises of a soft-deleted note are not live: they come back with the note.
    return [p for p in book.promises.values() if book.notes[p["note_id"]]["status"] != "Deleted"]


async def promises_to_pay(ctx: RequestContext) -> web.Response:
    """Get Promise To Pay Record(s) and Delete Promise To Pay."""
    book = _book(ctx)
    district = ctx.sandbox.district
    if ctx.method == "DELETE":
        if ctx.item_id is None:
            return error_response(400, "The Promise To Pay ID is required")
        promise = book.promises.get(ctx.item_id)
        if promise is None or book.notes[promise["note_id"]]["status"] == "Deleted":
            return error_response(
                404, "The promise to pay does not exist or has already been deleted."
            )
        del book.promises[ctx.item_id]
        return json_response({"status": "Deleted"})
    filters = query_filters(
        ctx.query,
        ints=("accountable_person_id", "debtor_code", "year_promised"),
        bools=("include_debtor_note",),
    )
    with_note = filters.pop("include_debtor_note", False)
    completed = ctx.query.get("promise_completed")
    if completed is not None and completed not in ("Yes", "No", "Partial"):
        raise validation_failed({"promise_completed": "The selected promise completed is invalid."})

    def render(promise: dict[str, Any]) -> dict[str, Any]:
        record = promise_record(promise)
        if with_note:
            record["debtor_note"] = district.note_record(
                book, book.notes[promise["note_id"]], False
            )
        return record

    live = _live_promises(book)
    if ctx.item_id is not None:
        for promise in live:
            if promise["promise_to_pay_id"] == ctx.item_id:
                return json_response(render(promise))
        return error_response(404, "The promise to pay does not exist.")
    year = filters.pop("year_promised", None)
    items = [
        p
        for p in live
        if (year is None or p["date_promised"].startswith(f"{year:04d}-"))
        and (completed is None or p["promise_completed"] == completed)
        and all(_matches(p, k, v) for k, v in filters.items())
    ]
    return paginate(
        items, [p["promise_to_pay_id"] for p in items], ctx.query, ctx.page_settings, render
    )


# -- reports --------------------------------------------------------------------------------------


async def age_analysis(ctx: RequestContext) -> web.Response:
    """Age Analysis Report: per family by default; ``per_learner``/``per_category`` regroup."""
    f = query_filters(
        ctx.query,
        ints=("debtor_code", "learner_id", "accountable_person_id", "category_id"),
        bools=("all_accounts", "per_learner", "per_category"),
    )
    ledger = _book(ctx).ledger
    rows, keys = ledger.age_analysis(
        bool(f.get("per_learner")),
        bool(f.get("per_category")),
        learner_id=f.get("learner_id"),
        category_id=f.get("category_id"),
    )
    picked = [
        i
        for i, row in enumerate(rows)
        if (f.get("all_accounts") or row["_active"])
        and f.get("debtor_code", row["debtor_code"])
        in (row["debtor_code"], int(row["debtor_code"]))
        and f.get("accountable_person_id", row["accountable_person_id"])
        == row["accountable_person_id"]
    ]
    return paginate(
        [rows[i] for i in picked], [keys[i] for i in picked], ctx.query, ctx.page_settings, _public
    )


async def financial_transactions(ctx: RequestContext) -> web.Response:
    """Financial Transactions Report: rows per family; ``per_learner`` adds the learner."""
    f = query_filters(
        ctx.query,
        ints=("debtor_code", "learner_id", "accountable_person_id", "category_id"),
        bools=("all_accounts", "per_learner"),
        dates=("start_date", "end_date"),
    )
    if "end_date" in f and "start_date" not in f:
        raise validation_failed(
            {"start_date": "The start date field is required when end date is present."}
        )
    if "end_date" in f and f["end_date"] < f["start_date"]:
        raise validation_failed(
            {"end_date": "The end date must be a date after or equal to start date."}
        )
    book = _book(ctx)
    # The ledger never changes, so a filter's selection is computed once and reused per page.
    selection_key = tuple(
        f.get(name)
        for name in (
            "all_accounts",
            "debtor_code",
            "start_date",
            "end_date",
            "accountable_person_id",
            "learner_id",
            "category_id",
        )
    )
    picked, keys = book.ledger.selection(selection_key, lambda: _select_transactions(book, f))
    per_learner = bool(f.get("per_learner"))
    return paginate(
        picked, keys, ctx.query, ctx.page_settings, lambda i: book.ledger.render(i, per_learner)
    )


def _select_transactions(book: SchoolBook, f: dict[str, Any]) -> list[int]:
    payers = (
        None
        if f.get("all_accounts")
        else {p["accountable_person_id"] for p in book.persons if p["_active"]}
    )
    start = f["start_date"].toordinal() if "start_date" in f else None
    end = f["end_date"].toordinal() if "end_date" in f else None
    person_id = f.get("accountable_person_id")
    learner_id = f.get("learner_id")
    category_id = f.get("category_id")
    debtor_code = f.get("debtor_code")
    if debtor_code is not None:
        # Debtor codes are per family: turn the filter into the family's accountable person.
        family = {
            p["accountable_person_id"] for p in book.persons if p["debtor_code"] == str(debtor_code)
        }
        payers = family if payers is None else payers & family
    return [
        i
        for i, t in enumerate(book.ledger.txns)
        if (payers is None or t[PERSON] in payers)
        and (start is None or t[DAY] >= start)
        and (end is None or t[DAY] <= end)
        and person_id in (None, t[PERSON])
        and learner_id in (None, t[LEARNER])
        and category_id in (None, t[CATEGORY])
    ]


# -- schools, accountable persons, learners -------------------------------------------------------


async def schools(ctx: RequestContext) -> web.Response:
    """Get Schools: the schools Finance+ answers for (no school header)."""
    district = ctx.sandbox.district
    delay = ctx.sandbox.config["activation_delay_s"]
    if ctx.item_id is not None:
        if ctx.item_id not in district.schools:
            return error_response(404, "The school does not exist.")
        if not district.has_finance_access(ctx.item_id, delay):
            return error_response(401, NOT_AUTHORISED)
        return json_response(district.schools[ctx.item_id])
    query_filters(ctx.query)
    ids = district.finance_school_ids(delay)
    return paginate(ids, ids, ctx.query, ctx.page_settings, district.schools.__getitem__)


async def accountable_persons(ctx: RequestContext) -> web.Response:
    """Get Accountable Person(s): active accounts unless ``all_accounts``; ``include_learners``."""
    f = query_filters(
        ctx.query,
        ints=("debtor_code", "accountable_person_id"),
        bools=("all_accounts", "include_learners"),
    )
    book = _book(ctx)

    def render(person: dict[str, Any]) -> dict[str, Any]:
        record = _public(person)
        if f.get("include_learners"):
            record["learners"] = [
                _public(lr)
                for lr in book.learners_by_person.get(person["accountable_person_id"], [])
            ]
        return record

    if ctx.item_id is not None:
        person = book.person_by_id.get(ctx.item_id)
        if person is None:
            return error_response(404, "The accountable person does not exist.")
        return json_response(render(person))
    items = [
        p
        for p in book.persons
        if (f.get("all_accounts") or p["_active"])
        and f.get("accountable_person_id", p["accountable_person_id"]) == p["accountable_person_id"]
        and _matches(p, "debtor_code", f.get("debtor_code", p["debtor_code"]))
    ]
    return paginate(
        items, [p["accountable_person_id"] for p in items], ctx.query, ctx.page_settings, render
    )


async def learners(ctx: RequestContext) -> web.Response:
    """Get Learner(s): current learners (or with a balance) unless ``all_accounts``."""
    f = query_filters(
        ctx.query,
        ints=("learner_id", "debtor_code", "accountable_person_id", "parent_id"),
        bools=("all_accounts", "include_parents", "include_accountable_person"),
    )
    book = _book(ctx)

    def render(learner: dict[str, Any]) -> dict[str, Any]:
        record = dict(learner)
        if f.get("include_parents"):
            ids = [learner["parent1_id"], learner["parent2_id"]]
            record["parents"] = [book.parents_by_id[i] for i in ids if i is not None]
        if f.get("include_accountable_person"):
            record["accountable_person"] = _public(
                book.person_by_id[learner["accountable_person_id"]]
            )
        return record

    if ctx.item_id is not None:
        learner = book.learner_by_id.get(ctx.item_id)
        if learner is None:
            return error_response(404, "The learner does not exist.")
        return json_response(render(learner))
    key = tuple(
        sorted(
            (k, v)
            for k, v in f.items()
            if k not in ("include_parents", "include_accountable_person")
        )
    )
    cached = book.learner_selections.get(key)
    if cached is None:
        # Bounded like the ledger's selections: filters by id would otherwise grow it per learner.
        if len(book.learner_selections) >= SELECTION_CACHE_SIZE:
            book.learner_selections.clear()
        items = _select_learners(book, f)
        cached = book.learner_selections[key] = (items, [lr["learner_id"] for lr in items])
    items, keys = cached
    return paginate(items, keys, ctx.query, ctx.page_settings, render)


def _select_learners(book: SchoolBook, f: dict[str, Any]) -> list[dict[str, Any]]:
    parent_id = f.get("parent_id")
    return [
        lr
        for lr in book.learners
        # Active: a current learner, or a learner who left with a balance still owing.
        if (
            f.get("all_accounts")
            or lr["status"] == "Current"
            or book.ledger.balances.get(lr["accountable_person_id"], 0) != 0
        )
        and f.get("learner_id", lr["learner_id"]) == lr["learner_id"]
        and f.get("accountable_person_id", lr["accountable_person_id"])
        == lr["accountable_person_id"]
        and _matches(lr, "debtor_code", f.get("debtor_code", lr["debtor_code"]))
        and (parent_id is None or parent_id in (lr["parent1_id"], lr["parent2_id"]))
    ]
