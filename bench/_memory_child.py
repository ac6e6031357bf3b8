"""Stream N learners with D6Hook in a fresh interpreter and print its peak RSS as JSON.

Run by ``bench_transport`` once per size and round: a fresh process per measurement keeps the
peaks of the small and the large walk independent of each other and of the harness.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys


def main() -> None:
    """Stream the learners described by the JSON spec in ``argv[1]`` and report the peak RSS."""
    spec = json.loads(sys.argv[1])
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=spec["conn_id"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    learners = itertools.chain.from_iterable(
        hook.iter_learners(school_id, **spec["filters"]) for school_id in spec["schools"]
    )
    records = sum(1 for _ in itertools.islice(learners, spec["records"]))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"records": records, "maxrss_before_mb": before, "maxrss_mb": after}))


if __name__ == "__main__":
    main()
