"""The Asset that says "a school has just activated a d6 module", and how its events are read.

``d6_onboarding`` emits an event of :data:`D6_SCHOOL_ACTIVATED` once a school × API type pair
reads activated; its extra names the pair (:func:`activation_extra`). ``d6_school_sync`` is
scheduled on the Asset as well as nightly, and syncs only the schools named by the events that
triggered it (:func:`activated_pairs`). Any DAG may do the same: the extra is the contract.

An event's extra is data from another DAG run (and, through Airflow's REST API, from anyone
allowed to create Asset events), so it is read defensively: ids must be plain integers in range,
the API type one d6 documents, and at most :data:`MAX_ACTIVATION_EVENTS` events are honoured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_d6._compat import Asset
from airflow_provider_d6._text import printable
from airflow_provider_d6.validation import MAX_ID

log = logging.getLogger(__name__)

#: Admin+ API and Curriculum+ API: the modules whose activation starts a school's first sync.
ACTIVATION_API_TYPES = {8: "Admin+ API", 9: "Curriculum+ API"}

#: Emitted by ``d6_onboarding`` when a pair reads activated; extra ``{school_id, api_type_id}``.
D6_SCHOOL_ACTIVATED = Asset(
    name="d6-school-activated", uri="d6://client-integrations/activated", group="d6"
)

#: More events than this in one run are not read (a flood, not onboarding).
MAX_ACTIVATION_EVENTS = 1000


def activation_extra(school_id: int, api_type_id: int) -> dict[str, int]:
    """Return the extra of a :data:`D6_SCHOOL_ACTIVATED` event for one pair."""
    return {"school_id": int(school_id), "api_type_id": int(api_type_id)}


def activated_pairs(events: Iterable[Any]) -> dict[int, set[int]]:
    """Return ``{school_id: {api_type_id, ...}}`` named by activation events, in school order.

    :param events: Asset events (anything with an ``extra`` mapping, such as the entries of a
        run's ``triggering_asset_events``); an event whose extra does not name a valid pair is
        logged (escaped) and ignored.
    """
    pairs: dict[int, set[int]] = {}
    for index, event in enumerate(events):
        if index >= MAX_ACTIVATION_EVENTS:
            log.warning(
                "Read the first %d activation events only; the rest are ignored.",
                MAX_ACTIVATION_EVENTS,
            )
            break
        extra = getattr(event, "extra", None)
        school_id = extra.get("school_id") if isinstance(extra, Mapping) else None
        api_type_id = extra.get("api_type_id") if isinstance(extra, Mapping) else None
        if (
            type(school_id) is not int
            or not 1 <= school_id <= MAX_ID
            or type(api_type_id) is not int
            or api_type_id not in ACTIVATION_API_TYPES
        ):
            log.warning(
                "Ignoring an activation event whose extra names no school and API type: %s",
                printable(repr(extra), limit=200),
            )
            continue
        pairs.setdefault(school_id, set()).add(api_type_id)
    return dict(sorted(pairs.items()))


__all__ = [
    "ACTIVATION_API_TYPES",
    "D6_SCHOOL_ACTIVATED",
    "MAX_ACTIVATION_EVENTS",
    "activated_pairs",
    "activation_extra",
]
