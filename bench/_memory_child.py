"""Stream N learners with D6Hook in a fresh interpreter and print its peak RSS growth as JSON.

Run by ``bench_transport`` once per size and round: a fresh process per measurement keeps the
peaks of the small and the large walk independent of each other and of the harness. Linux lets
a process reset its peak RSS (``/proc/self/clear_refs``), so the peak measured is the streaming
one, not the higher peak that importing Airflow leaves behind.
"""

from __future__ import annotations

import gc
import itertools
import json
import resource
import sys


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def main() -> None:
    """Stream the learners described by the JSON spec in ``argv[1]`` and report the peak RSS."""
    spec = json.loads(sys.argv[1])
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=spec["conn_id"])
    learners = itertools.chain.from_iterable(
        hook.iter_learners(school_id, **spec["filters"]) for school_id in spec["schools"]
    )
    gc.collect()
    reset = _reset_peak()
    baseline_kb = (
        _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    records = sum(1 for _ in itertools.islice(learners, spec["records"]))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "records": records,
                "peak_reset": reset,
                "baseline_mb": baseline_kb / 1024,
                "maxrss_mb": peak_kb / 1024,
                "growth_mb": (peak_kb - baseline_kb) / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
