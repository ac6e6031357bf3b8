"""What a d6 client-integration record says, in one place for hooks, operators, sensors and DAGs.

A client integration is one school x API type pair. d6 lists a pair once its school has
authorised the integrator; ``activated_by_integrator`` ("Yes"/"No") says whether the integrator
switched it on. v1 answers name the school ``school_login_id`` and send ids as strings.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_d6.hooks._endpoints import ENDPOINTS, coerce_ids
from airflow_provider_d6.validation import check_filters, check_id

CLIENT_INTEGRATIONS = ENDPOINTS["client_integrations"]

#: The states a sensor or trigger can wait for.
UNTIL_CHOICES = ("authorised", "activated", "deactivated")


def is_activated(record: dict[str, Any] | None) -> bool:
    """Return whether a client-integration record says the integrator activated it.

    :param record: a client-integration record as the hook returns it (None: not listed, so not
        activated)
    """
    if not record:
        return False
    flag = record.get("activated_by_integrator")
    # d6 sends "Yes"/"No"; a caller that normalised it may hand over a bool.
    if isinstance(flag, str):
        return flag.strip().lower() in {"yes", "true", "1"}
    return bool(flag)


def condition_met(record: dict[str, Any] | None, until: str) -> bool:
    """Return whether a client-integration record (``None``: not listed) satisfies *until*.

    :param record: the pair's record, or ``None`` when the school has not authorised it.
    :param until: ``"authorised"`` (listed), ``"activated"`` or ``"deactivated"`` (listed, not
        activated by the integrator).
    """
    if record is None:
        return False
    if until == "authorised":
        return True
    activated = is_activated(record)
    return activated if until == "activated" else not activated


def client_integration_record(payload: Any) -> dict[str, Any] | None:
    """Return the client integration record in a v2 or v1 answer, normalised to v2, or None.

    v2 wraps it in ``data``; v1 sends it bare, names the school ``school_login_id`` and sends
    every id as a string.
    """
    record = payload.get("data", payload) if isinstance(payload, dict) else None
    if not isinstance(record, dict) or "activated_by_integrator" not in record:
        return None
    if "school_id" not in record and "school_login_id" in record:
        record = {
            "school_id": record["school_login_id"],
            **{k: v for k, v in record.items() if k != "school_login_id"},
        }
    normalised: dict[str, Any] = coerce_ids(record, CLIENT_INTEGRATIONS)
    return normalised


def list_params(school_id: Any = None, api_type_id: Any = None, **filters: Any) -> dict[str, Any]:
    """Return the checked query of Get Client Integrations (raises ``D6InputError``)."""
    return check_filters(
        CLIENT_INTEGRATIONS, {"school_id": school_id, "api_type_id": api_type_id, **filters}
    )


def pair(school_id: Any, api_type_id: Any) -> dict[str, int]:
    """Return ``{"school_id": ..., "api_type_id": ...}`` checked, to look one pair up."""
    return {
        "school_id": check_id(school_id, "school_id"),
        "api_type_id": check_id(api_type_id, "api_type_id"),
    }


def is_pair(record: dict[str, Any], wanted: dict[str, int]) -> bool:
    """Return whether *record* is the pair *wanted* (d6 filters, but a record is checked anyway)."""
    return (
        record.get("school_id") == wanted["school_id"]
        and record.get("api_type_id") == wanted["api_type_id"]
    )


__all__ = [
    "UNTIL_CHOICES",
    "client_integration_record",
    "condition_met",
    "is_activated",
    "is_pair",
    "list_params",
    "pair",
]
