"""The per-learner Curriculum+ fan-out at d6's rate limit: fixed and adaptive throttle, memory."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from bench.common import (
    BENCH_DIR,
    Config,
    Result,
    Target,
    progress,
    requests_log,
    require,
    run_child,
    sandbox,
    scored,
    set_connection,
    status_counts,
)

FIXED_TARGET = Target("<=", 1.05, "zero 429")
ADAPTIVE_TARGET = Target("<=", 1.30, "every learner's rows exactly once")
MEMORY_TARGET = Target("<=", 10)

# The sandbox school with Admin+ and Curriculum+ activated ((school_id - 1000) % 4 == 2).
SCHOOL = 1002
# About 88% of the sandbox's generated learners are current (and so have subjects and marks).
CURRENT_SHARE = 0.885
_BUCKET_REFILL_S = 1.2


def _reference(conn_id: str, school_id: int) -> dict[str, list[Any]]:
    """Every learner's rows read one learner at a time, unthrottled: what the fan-out must match."""
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=conn_id)
    learners = dict.fromkeys(r["learner_id"] for r in hook.iter_learner_subjects(school_id))
    out = {}
    for learner in learners:
        digest, count = hashlib.sha256(), 0
        for row in hook.iter_learner_subject_marks(school_id, learner, flatten=True):
            digest.update(json.dumps(row, sort_keys=True).encode())
            count += 1
        out[str(learner)] = [count, digest.hexdigest()]
    hook.close()
    return out


def _first_learner(conn_id: str, school_id: int) -> int:
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=conn_id)
    try:
        return int(next(iter(hook.iter_learner_subjects(school_id)))["learner_id"])
    finally:
        hook.close()


def _run(handle: Any, conn_id: str, warm_up_learner: int) -> dict[str, Any]:
    handle.control.clear_requests()
    spec = {"conn_id": conn_id, "school_id": SCHOOL, "warm_up_learner": warm_up_learner}
    out = run_child([str(BENCH_DIR / "_fanout_child.py"), json.dumps(spec)], timeout=900)
    log = requests_log(handle.control)[1:]  # the warm-up request is not the fan-out's
    out["requests"] = len(log)
    out["status_429"] = status_counts(log).get(429, 0)
    out["needed"] = len(log) - out["status_429"]
    return out


def fanout_at_rate_limit(cfg: Config) -> list[Result]:
    """Read Subject Marks for a school's learners at 50 req/s, fixed and adaptive; then memory.

    :param cfg: the harness configuration
    """
    require("airflow_provider_d6.hooks._curriculum", "the Curriculum+ fan-out")
    rate = cfg.sizes.rate_limit
    small, large = cfg.sizes.fanout_learners
    runs: dict[str, dict[str, Any]] = {}
    for learners in (large, small):
        generated = round(learners / CURRENT_SHARE)
        with sandbox(schools=3, learners_per_school=generated) as handle:
            plain = set_connection("d6_bench_fanout_plain", handle)
            fixed = set_connection("d6_bench_fanout_fixed", handle, requests_per_second=rate)
            adaptive = set_connection("d6_bench_fanout_adaptive", handle)
            reference = _reference(plain, SCHOOL) if learners == large else None
            first = _first_learner(plain, SCHOOL)
            handle.control.configure(rate_limit=rate)
            variants = ("fixed", "adaptive") if learners == large else ("fixed",)
            for variant in variants:
                time.sleep(_BUCKET_REFILL_S)
                run = _run(handle, fixed if variant == "fixed" else adaptive, first)
                run["floor_s"] = run["needed"] / rate
                run["ratio"] = run["wall_s"] / run["floor_s"]
                if reference is not None:
                    run["exactly_once"] = run["per_learner"] == reference
                    run["reference_learners"] = len(reference)
                    run["reference_rows"] = sum(count for count, _ in reference.values())
                run.pop("per_learner")
                runs[f"{variant}_{learners}"] = run
                progress(
                    f"fanout {variant}, {run['learners']} learners: {run['wall_s']:.1f}s for "
                    f"{run['requests']} requests ({run['ratio']:.3f}x the {rate}/s floor), "
                    f"{run['status_429']} x 429, peak RSS +{run['growth_mb']:.1f} MB"
                )
    fixed_run, adaptive_run = runs[f"fixed_{large}"], runs[f"adaptive_{large}"]
    growth = (
        max(fixed_run["growth_mb"], adaptive_run["growth_mb"]) - runs[f"fixed_{small}"]["growth_mb"]
    )

    def once(run: dict[str, Any]) -> str:
        return "every learner's rows once" if run["exactly_once"] else "ROWS MISSING OR TWICE"

    details = {"rate_limit_per_s": rate, "school_id": SCHOOL, "runs": runs}

    def rate_limited(
        name: str, run: dict[str, Any], target: Target, display: str, *, no_429: bool
    ) -> Result:
        return scored(
            name,
            run["ratio"],
            target,
            f"{run['ratio']:.3f}× the floor ({display}), {run['status_429']} × 429, {once(run)}",
            details,
            also=run["exactly_once"] and (run["status_429"] == 0 or not no_429),
        )

    return [
        rate_limited(
            "fanout_at_rate_limit",
            fixed_run,
            FIXED_TARGET,
            f"{fixed_run['wall_s']:.1f} s for {fixed_run['learners']} learners, "
            f"{fixed_run['requests']} requests",
            no_429=True,
        ),
        rate_limited(
            "fanout_adaptive",
            adaptive_run,
            ADAPTIVE_TARGET,
            f"{adaptive_run['wall_s']:.1f} s",
            no_429=False,
        ),
        scored(
            "fanout_memory",
            growth,
            MEMORY_TARGET,
            f"{growth:+.1f} MB ({fixed_run['learners']} vs "
            f"{runs[f'fixed_{small}']['learners']} learners)",
            {
                "peak_growth_mb": {name: run["growth_mb"] for name, run in runs.items()},
                "learners": {name: run["learners"] for name, run in runs.items()},
            },
            unit="MB",
        ),
    ]
