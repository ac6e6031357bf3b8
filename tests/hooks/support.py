"""Helpers for the hook tests: find sandbox pairs and schools in a given state, filter the log."""

from __future__ import annotations

from typing import Any


def pair(control, activated: bool) -> tuple[int, int]:
    """Return a (school_id, api_type_id) listed with the given activation state."""
    for record in control.data("client_integrations"):
        if (record["activated_by_integrator"] == "Yes") == activated:
            return record["school_id"], record["api_type_id"]
    raise AssertionError(f"the seeded district has no pair with activated={activated}")


def unauthorised_pair(control) -> tuple[int, int]:
    """Return a (school_id, api_type_id) the school has not authorised."""
    listed = {(r["school_id"], r["api_type_id"]) for r in control.data("client_integrations")}
    for school in control.data("schools"):
        for api_type_id in (8, 9):
            if (school["school_id"], api_type_id) not in listed:
                return school["school_id"], api_type_id
    raise AssertionError("every pair is authorised")


def finance_school(control) -> int:
    """Return a school Finance+ answers for (it has an activated integration)."""
    return pair(control, True)[0]


def closed_school(control) -> int:
    """Return a school with no activated integration (Finance+ answers 401 for it)."""
    active = {
        r["school_id"]
        for r in control.data("client_integrations")
        if r["activated_by_integrator"] == "Yes"
    }
    for school in control.data("schools"):
        if school["school_id"] not in active:
            return school["school_id"]
    raise AssertionError("every school has an activated integration")


def d6_requests(control, path: str, method: str | None = None) -> list[dict[str, Any]]:
    """Return the logged d6 requests whose path ends with *path* (and of *method*)."""
    return [
        r
        for r in control.requests()
        if r["path"].endswith(path) and (method is None or r["method"] == method)
    ]
