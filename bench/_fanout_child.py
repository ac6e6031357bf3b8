"""Child of ``fanout_at_rate_limit``: read one school's Subject Marks for every learner with D6Hook.

Argument: one JSON document with ``conn_id``, ``school_id`` and ``warm_up_learner`` (read once
before measuring: the first request of the log). Prints one JSON line: the wall
time of the fan-out, its peak RSS growth, and per learner the count and a digest of its rows (so
the parent can check every learner's rows arrived exactly once). A fresh interpreter per run
keeps each peak independent of the harness and of the other runs.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._memory_child import _reset_peak, _status_kb  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    import resource

    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=spec["conn_id"])
    # Warm up with a fan-out over one learner (one request): what the first request and the
    # first thread pool load is set-up, not memory that grows with the learners.
    warm = hook.iter_school_subject_marks(
        spec["school_id"], learner_ids=[spec["warm_up_learner"]], flatten=True
    )
    sum(1 for _ in warm)
    digests: dict[int, hashlib._Hash] = {}
    counts: dict[int, int] = {}
    gc.collect()
    reset = _reset_peak()
    baseline_kb = (
        _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    started = time.perf_counter()
    fan = hook.iter_school_subject_marks(spec["school_id"], flatten=True)
    for row in fan:
        learner = row["learner_id"]
        counts[learner] = counts.get(learner, 0) + 1
        digest = digests.get(learner)
        if digest is None:
            digest = digests[learner] = hashlib.sha256()
        digest.update(json.dumps(row, sort_keys=True).encode())
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "wall_s": wall,
                "learners": fan.learners,
                "failures": len(fan.failures),
                "rows": sum(counts.values()),
                "per_learner": {str(k): [counts[k], digests[k].hexdigest()] for k in counts},
                "peak_reset": reset,
                "growth_mb": (peak_kb - baseline_kb) / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
