"""Requests a full nightly sync of one school sends, against the fewest the contract allows."""

from __future__ import annotations

import math
from typing import Any

from bench.common import (
    Config,
    Result,
    Target,
    progress,
    requests_log,
    require,
    sandbox,
    scored,
    set_connection,
)

TARGET = Target("<=", 1.02)
# The seeded school with Admin+ and Curriculum+ activated ((school_id - 1000) % 4 == 2); Finance+
# answers for it too.
SCHOOL = 1002
# District-wide listings, not part of one school's sync.
NOT_PER_SCHOOL = {"schools", "client_integrations"}


def requests_per_school(cfg: Config) -> list[Result]:
    """Export every Finance+, Admin+ and Curriculum+ resource of one school, one task each.

    :param cfg: the harness configuration
    """
    endpoints = require("airflow_provider_d6.hooks._endpoints", "the endpoint catalogue")
    from airflow_provider_d6.hooks.d6 import D6Hook

    catalogue = {**endpoints.ENDPOINTS, **endpoints.V1_ENDPOINTS}
    resources = [name for name in endpoints.RESOURCE_FIELDS if name not in NOT_PER_SCHOOL]
    rows: list[dict[str, Any]] = []
    with sandbox(schools=4, learners_per_school=cfg.sizes.school_learners) as handle:
        conn_id = set_connection("d6_bench_school", handle)
        largest_page = handle.control.config()["max_allowed_limit"]
        learners = None
        for name in resources:
            endpoint = catalogue[name]
            school = SCHOOL if endpoint.school_scoped else None
            handle.control.clear_requests()
            hook = D6Hook(d6_conn_id=conn_id)  # one task per resource, as a mapped export runs
            try:
                records = sum(1 for _ in hook.iter_resource(name, school))
            finally:
                hook.close()
            sent = len(requests_log(handle.control))
            if endpoint.per_learner:
                if learners is None:
                    learners = _learners(conn_id)
                minimum = learners  # one request per learner: d6 has no bulk route for these
            elif endpoint.paginated:
                minimum = max(1, math.ceil(records / largest_page))
            else:
                minimum = 1
            rows.append(
                {"resource": name, "records": records, "requests": sent, "minimum": minimum}
            )
    sent = sum(row["requests"] for row in rows)
    minimum = sum(row["minimum"] for row in rows)
    ratio = sent / minimum
    progress(f"requests_per_school: {sent} requests for a minimum of {minimum} ({ratio:.3f}x)")
    return [
        scored(
            "requests_per_school",
            ratio,
            TARGET,
            display=(
                f"{ratio:.3f}× ({sent} requests for {sum(r['records'] for r in rows):,} records "
                f"of {len(rows)} resources; minimum {minimum})"
            ),
            details={
                "school_id": SCHOOL,
                "largest_page": largest_page,
                "learners": learners,
                "requests": sent,
                "minimum": minimum,
                "resources": rows,
            },
        )
    ]


def _learners(conn_id: str) -> int:
    """Return how many learners have subjects this year (the per-learner endpoints' learners)."""
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=conn_id)
    try:
        return len({row["learner_id"] for row in hook.iter_learner_subjects(SCHOOL)})
    finally:
        hook.close()
