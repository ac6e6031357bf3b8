"""Settings routes: Get Client Integrations and Change Client Integration State, v2 and v1."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from d6_sandbox.data import API_TYPES, Integration
from d6_sandbox.protocol import (
    D6Reply,
    RequestContext,
    json_response,
    not_authorised,
    paginate,
    parse_bool,
    parse_int,
    query_filters,
    v1_error,
    validation_failed,
)


async def get_client_integrations(ctx: RequestContext) -> web.Response:
    """``GET /v2/settings/clientintegrations``: the authorised pairs, paginated."""
    filters = query_filters(ctx.query, ints=("school_id", "api_type_id"))
    district = ctx.sandbox.district
    items = [
        i
        for i in district.sorted_integrations()
        if filters.get("school_id", i.school_id) == i.school_id
        and filters.get("api_type_id", i.api_type_id) == i.api_type_id
    ]
    # Cursor keys: one integer per pair that sorts like (school_id, api_type_id).
    keys = [i.school_id * 1000 + i.api_type_id for i in items]
    return paginate(items, keys, ctx.query, ctx.page_settings, ctx.sandbox.integration_record)


def _find(ctx: RequestContext, school_id: int, api_type_id: int) -> Integration | None:
    return ctx.sandbox.district.integrations.get((school_id, api_type_id))


def _set_state(ctx: RequestContext, integration: Integration, state: bool) -> None:
    integration.activated = state
    if state:
        integration.activated_at = time.monotonic()


async def change_client_integration_state(ctx: RequestContext) -> web.Response:
    """Change Client Integration State (v2): 200 changed, 400 already so, 401 unauthorised."""
    if not ctx.sandbox.config["v2_activation_route"]:
        # As reported live: the documented v2 route does not exist there.
        raise D6Reply(ctx.sandbox.route_not_found_response())
    body = ctx.json_body()
    if not isinstance(body, dict):
        raise validation_failed({"body": "The request body must be a JSON object."})
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in ("school_id", "api_type_id", "state"):
        if body.get(name) is None:
            errors[name] = f"The {name} field is required."
    if body.get("school_id") is not None:
        values["school_id"] = parse_int(body["school_id"], "school_id", errors)
    if body.get("api_type_id") is not None:
        api_type_id = parse_int(body["api_type_id"], "api_type_id", errors)
        if api_type_id is not None and api_type_id not in API_TYPES:
            errors["api_type_id"] = "The api_type_id is invalid"
        values["api_type_id"] = api_type_id
    if body.get("state") is not None:
        state = parse_bool(body["state"], "state", errors)
        if "state" in errors:
            errors["state"] = "The State must be a boolean"
        values["state"] = state
    if errors:
        raise validation_failed(errors)
    integration = _find(ctx, values["school_id"], values["api_type_id"])
    if integration is None:
        raise not_authorised()
    word = "activated" if values["state"] else "deactivated"
    if integration.activated == values["state"]:
        record = ctx.sandbox.integration_record(integration)
        return json_response(
            {"success": False, "message": f"Integration already {word}", "data": record}, 400
        )
    _set_state(ctx, integration, values["state"])
    record = ctx.sandbox.integration_record(integration)
    return json_response(
        {"success": True, "message": f"Integration successfully {word}", "data": record}
    )


def _v1_record(record: dict[str, Any]) -> dict[str, Any]:
    # v1 names the school "school_login_id" and sends every id as a string.
    return {
        "school_login_id": str(record["school_id"]),
        "school_name": record["school_name"],
        "admin_email_address": record["admin_email_address"],
        "telephone_calling_code": record["telephone_calling_code"],
        "telephone_number": record["telephone_number"],
        "api_type_id": str(record["api_type_id"]),
        "api_type": record["api_type"],
        "activated_by_integrator": record["activated_by_integrator"],
    }


async def v1_get_clients(ctx: RequestContext) -> web.Response:
    """``GET /v1/settings/clients[/{school_id}]``: a bare array; 404 when there is no record."""
    district = ctx.sandbox.district
    records = [
        _v1_record(ctx.sandbox.integration_record(i))
        for i in district.sorted_integrations()
        if ctx.item_id is None or i.school_id == ctx.item_id
    ]
    if not records:
        return v1_error(404, "Not found", "No records found")
    return json_response(records)


async def v1_change_client_state(ctx: RequestContext) -> web.Response:
    """``PATCH /v1/settings/clients/{school_id}``: 204 with an empty body, idempotent."""
    if ctx.item_id is None:
        raise D6Reply(ctx.sandbox.route_not_found_response())
    body = ctx.json_body()
    if not isinstance(body, dict):
        return v1_error(400, "Bad Request", "The request body must be a JSON object.")
    errors: dict[str, str] = {}
    for name in ("api_type_id", "state"):
        if body.get(name) is None:
            errors[name] = f"The {name} field is required."
    api_type_id = (
        parse_int(body["api_type_id"], "api_type_id", errors)
        if "api_type_id" not in errors
        else None
    )
    if "api_type_id" not in errors and api_type_id not in API_TYPES:
        errors["api_type_id"] = "The api_type_id is invalid"
    state = parse_bool(body["state"], "state", errors) if "state" not in errors else None
    if errors:
        return v1_error(400, "Bad Request", "; ".join(errors.values()))
    integration = _find(ctx, ctx.item_id, api_type_id)
    if integration is None:
        raise not_authorised()
    if integration.activated != state:
        _set_state(ctx, integration, bool(state))
    return web.Response(status=204)
