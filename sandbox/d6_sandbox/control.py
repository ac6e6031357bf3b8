"""The control API under ``/_sandbox/``: never authenticated, rate limited, faulted or logged.

It does what d6 offers no API for (a school authorising the integrator), steers faults and
settings at run time, and exposes the request log and the ground-truth data to tests.

It has no credentials, so it refuses what a web page open in the developer's browser could send
it (CSRF): every request that is not a GET must carry ``Content-Type: application/json`` (a
browser sends that cross-origin only after a CORS preflight, which the sandbox never grants), a
request with an ``Origin`` other than the sandbox's own or ``Sec-Fetch-Site: cross-site`` is
refused, and (for every route, in ``app.py``) the ``Host`` must be the sandbox's own address, so
a DNS-rebinding page cannot reach it either. Refusals answer 403 ``{"error": ...}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from d6_sandbox import names
from d6_sandbox.data import API_TYPES, Integration, promise_record
from d6_sandbox.faults import FaultPlan
from d6_sandbox.protocol import json_response

if TYPE_CHECKING:
    from d6_sandbox.app import Sandbox

COLLECTIONS = (
    "schools",
    "client_integrations",
    "learners",
    "accountable_persons",
    "notes",
    "promises_to_pay",
    "age_analysis",
    "financial_transactions",
    "transaction_types",
    "transaction_categories",
    "communication_types",
    "note_types",
)


class ControlError(Exception):
    """A bad control request; answered 400 (or *status*) with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def handle_control(sandbox: Sandbox, request: web.BaseRequest) -> web.Response:
    """Serve one ``/_sandbox/...`` request."""
    name = request.path[len("/_sandbox/") :].strip("/")
    method = request.method
    try:
        _refuse_cross_site(request)
        body = await _body(request)
        if name == "health" and method == "GET":
            return json_response({"ok": True})
        if name in ("authorise", "deauthorise") and method == "POST":
            return json_response(_authorise(sandbox, body, name == "authorise"))
        if name == "faults":
            if method == "POST":
                sandbox.faults = FaultPlan.from_json(body, seed=sandbox.seed)
            elif method == "DELETE":
                sandbox.faults = FaultPlan.from_json({}, seed=sandbox.seed)
            elif method != "GET":
                raise ControlError("method not allowed", 405)
            return json_response(sandbox.faults.to_json())
        if name == "config":
            if method == "POST":
                sandbox.configure(body)
            elif method != "GET":
                raise ControlError("method not allowed", 405)
            return json_response(sandbox.config)
        if name == "requests":
            if method == "DELETE":
                sandbox.log.clear()
                return json_response([])
            if method == "GET":
                return json_response(list(sandbox.log))
            raise ControlError("method not allowed", 405)
        if name == "reset" and method == "POST":
            sandbox.reset()
            return json_response({"ok": True})
        if name.startswith("data/") and method == "GET":
            school_id = request.query.get("school_id")
            return json_response(
                ground_truth(sandbox, name[len("data/") :], int(school_id) if school_id else None)
            )
        raise ControlError(f"unknown control route {method} /_sandbox/{name}", 404)
    except ControlError as exc:
        return json_response({"error": str(exc)}, exc.status)
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, 400)


def _refuse_cross_site(request: web.BaseRequest) -> None:
    headers = request.headers
    if headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        raise ControlError("cross-site requests are refused", 403)
    origin = headers.get("Origin")
    if origin is not None:
        own = {f"{request.scheme}://{headers.get('Host', '').strip().lower()}"}
        if origin.strip().lower() not in own:
            raise ControlError("requests from another origin are refused", 403)
    if request.method not in ("GET", "HEAD"):
        media_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise ControlError(
                "control requests other than GET must send Content-Type: application/json", 403
            )


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    if request.method not in ("POST", "PATCH", "PUT"):
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ControlError("body is not JSON") from None
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


def _authorise(sandbox: Sandbox, body: dict[str, Any], authorise: bool) -> dict[str, Any]:
    district = sandbox.district
    try:
        school_id, api_type_id = int(body["school_id"]), int(body["api_type_id"])
    except (KeyError, TypeError, ValueError):
        raise ControlError("school_id and api_type_id (integers) are required") from None
    if school_id not in district.schools:
        raise ControlError(f"unknown school {school_id}", 404)
    if api_type_id not in API_TYPES:
        raise ControlError(f"unknown api type {api_type_id}; known: {sorted(API_TYPES)}", 404)
    key = (school_id, api_type_id)
    if not authorise:
        removed = district.integrations.pop(key, None)
        return {"school_id": school_id, "api_type_id": api_type_id, "removed": removed is not None}
    integration = district.integrations.get(key)
    if integration is None:
        integration = district.integrations[key] = Integration(
            school_id, api_type_id, activated=False
        )
    return sandbox.integration_record(integration)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def ground_truth(sandbox: Sandbox, collection: str, school_id: int | None) -> list[dict[str, Any]]:
    """Return every record of *collection* as stored (all accounts, soft-deleted notes included).

    Per-school collections need *school_id*, or cover every school with ``school_id`` added.
    """
    district = sandbox.district
    if collection not in COLLECTIONS:
        raise ControlError(
            f"unknown collection {collection!r}; known: {', '.join(COLLECTIONS)}", 404
        )
    if collection == "schools":
        return list(district.schools.values())
    if collection == "client_integrations":
        return [
            sandbox.integration_record(i)
            for i in district.sorted_integrations()
            if school_id in (None, i.school_id)
        ]
    lookups = {
        "transaction_types": names.TRANSACTION_TYPES,
        "communication_types": names.COMMUNICATION_TYPES,
        "note_types": names.NOTE_TYPES,
    }
    if collection in lookups:
        return [{"id": i, "name": n} for i, n in lookups[collection]]
    if school_id is not None:
        if school_id not in district.schools:
            raise ControlError(f"unknown school {school_id}", 404)
        return _school_records(sandbox, collection, school_id)
    return [
        {"school_id": sid, **record}
        for sid in district.schools
        for record in _school_records(sandbox, collection, sid)
    ]


def _school_records(sandbox: Sandbox, collection: str, school_id: int) -> list[dict[str, Any]]:
    book = sandbox.district.book(school_id)
    if collection == "learners":
        return [dict(lr) for lr in book.learners]
    if collection == "accountable_persons":
        return [_public(p) for p in book.persons]
    if collection == "notes":
        return [sandbox.district.note_record(book, n, False) for n in book.notes.values()]
    if collection == "promises_to_pay":
        return [promise_record(p) for p in book.promises.values()]
    if collection == "age_analysis":
        return [_public(row) for row in book.ledger.age_analysis(False, False)[0]]
    if collection == "financial_transactions":
        return [book.ledger.render(i, True) for i in range(len(book.ledger.txns))]
    if collection == "transaction_categories":
        return list(book.categories)
    raise ControlError(f"unknown collection {collection!r}", 404)
