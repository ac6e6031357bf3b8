"""Find school × API type pairs in a given onboarding state in the sandbox's ground truth."""

from __future__ import annotations

from airflow_provider_d6.triggers.client_integrations import is_activated


def pair_states(control) -> dict[tuple[int, int], bool | None]:
    """Return every school × API type pair: True/False when listed (activated?), None when not."""
    listed = {
        (record["school_id"], record["api_type_id"]): is_activated(record)
        for record in control.data("client_integrations")
    }
    schools = [school["school_id"] for school in control.data("schools")]
    return {(school, api): listed.get((school, api)) for school in schools for api in (8, 9)}


def pick(control, state: bool | None) -> tuple[int, int]:
    """Return the first pair in *state* (None: not authorised by its school)."""
    return next(pair for pair, value in pair_states(control).items() if value is state)
