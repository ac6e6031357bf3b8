"""ClientIntegrationsOperator at d6's rate limit (fixed and adaptive throttle) and under latency."""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Config,
    Result,
    Target,
    alternating,
    authorise_all,
    integration_states,
    median,
    progress,
    requests_log,
    require,
    sandbox,
    set_connection,
)

FIXED_TARGET = Target("<=", 1.10, "zero 429")
ADAPTIVE_TARGET = Target("<=", 1.30, "every pair reconciled")
CONCURRENCY_TARGET = Target(">=", 6)

# Seconds left between runs so the sandbox's token bucket is full again when a run starts.
_BUCKET_REFILL_S = 1.2


def _operator_class() -> type:
    module = require(
        "airflow_provider_d6.operators.client_integrations", "ClientIntegrationsOperator"
    )
    return module.ClientIntegrationsOperator


def _apply(
    handle: Any,
    operator_class: type,
    task_id: str,
    conn_id: str,
    target: dict[tuple[int, int], bool],
    **options: Any,
) -> dict[str, Any]:
    """Run the operator towards *target* and return what it cost and whether it got there."""
    before = integration_states(handle.control)
    needed = sum(1 for pair, state in target.items() if before.get(pair) != state)
    desired = [
        {"school_id": school_id, "api_type_id": api_type_id, "state": state}
        for (school_id, api_type_id), state in sorted(target.items())
    ]
    operator = operator_class(
        task_id=task_id, d6_conn_id=conn_id, desired_states=desired, **options
    )
    handle.control.clear_requests()
    started = time.perf_counter()
    report = operator.execute(context={})
    wall = time.perf_counter() - started
    log = requests_log(handle.control)
    after = integration_states(handle.control)
    return {
        "wall_s": wall,
        "requests": len(log),
        "writes": sum(1 for entry in log if entry["method"] != "GET"),
        "status_429": sum(1 for entry in log if entry["status"] == 429),
        "changes_needed": needed,
        "changed": len(report["changed"]),
        "failed": len(report["failed"]),
        "reconciled": all(after.get(pair) == state for pair, state in target.items()),
    }


def _flipped(states: dict[tuple[int, int], bool], pairs: list[tuple[int, int]]) -> dict:
    return {pair: (not state) if pair in pairs else state for pair, state in states.items()}


def reconcile(cfg: Config) -> list[Result]:
    """Reconcile every pair of a district, a third needing a change, at d6's rate limit.

    :param cfg: the harness configuration
    """
    operator_class = _operator_class()
    rate = cfg.sizes.rate_limit
    with sandbox(schools=cfg.sizes.reconcile_schools, learners_per_school=1) as handle:
        pairs = authorise_all(handle.control)
        handle.control.configure(rate_limit=rate)
        original = {
            pair: state
            for pair, state in integration_states(handle.control).items()
            if pair in pairs
        }
        changed = _flipped(original, pairs[::3])
        fixed = set_connection("d6_bench_fixed", handle, requests_per_second=rate)
        adaptive = set_connection("d6_bench_adaptive", handle)
        runs: dict[str, list[dict[str, Any]]] = {"fixed": [], "adaptive": []}
        current = original
        for number, fixed_first in alternating(cfg.rounds):
            for variant in ("fixed", "adaptive") if fixed_first else ("adaptive", "fixed"):
                target = changed if current is original else original
                time.sleep(0.1 if cfg.quick else _BUCKET_REFILL_S)
                run = _apply(
                    handle,
                    operator_class,
                    f"reconcile_{variant}_{number}",
                    fixed if variant == "fixed" else adaptive,
                    target,
                )
                run["ratio"] = run["wall_s"] / (run["requests"] / rate)
                runs[variant].append(run)
                progress(
                    f"reconcile {variant} round {number + 1}/{cfg.rounds}: {run['wall_s']:.1f}s for "
                    f"{run['requests']} requests ({run['ratio']:.3f}x the {rate}/s floor), "
                    f"{run['status_429']} x 429, reconciled={run['reconciled']}"
                )
                if not run["reconciled"]:
                    # Start the next run from what is really there, not from what was asked for.
                    target = integration_states(handle.control)
                    current = original if target == original else changed
                else:
                    current = target
    return [
        _reconcile_result("reconcile_at_rate_limit", runs["fixed"], FIXED_TARGET, len(pairs), rate),
        _reconcile_result(
            "reconcile_adaptive", runs["adaptive"], ADAPTIVE_TARGET, len(pairs), rate
        ),
    ]


def _reconcile_result(name: str, runs: list[dict], target: Target, pairs: int, rate: int) -> Result:
    ratio = median(run["ratio"] for run in runs)
    total_429 = sum(run["status_429"] for run in runs)
    all_reconciled = all(run["reconciled"] and run["failed"] == 0 for run in runs)
    if name == "reconcile_at_rate_limit":
        passed = target.met(ratio) and total_429 == 0 and all_reconciled
        extra = f"{total_429} × 429"
    else:
        passed = target.met(ratio) and all_reconciled
        extra = "every pair reconciled" if all_reconciled else "NOT all reconciled"
        extra += f", {total_429} × 429"
    return Result(
        name=name,
        value=ratio,
        unit="ratio",
        target=str(target),
        passed=passed,
        display=f"{ratio:.3f}× ({median(r['wall_s'] for r in runs):.1f} s, {extra})",
        details={
            "pairs": pairs,
            "rate_limit_per_s": rate,
            "wall_s": median(run["wall_s"] for run in runs),
            "requests": median(run["requests"] for run in runs),
            "changes": median(run["changed"] for run in runs),
            "status_429_total": total_429,
            "every_pair_reconciled": all_reconciled,
            "runs": runs,
        },
    )


def concurrent_apply(cfg: Config) -> list[Result]:
    """Apply state changes under sandbox latency with ``max_concurrency=1`` and the default.

    :param cfg: the harness configuration
    """
    operator_class = _operator_class()
    changes = cfg.sizes.concurrent_changes
    with sandbox(schools=(changes + 1) // 2, learners_per_school=1) as handle:
        pairs = authorise_all(handle.control, limit=changes)
        # Latency is switched on after the set-up so that only the measured runs pay it.
        handle.control.configure(latency_ms=cfg.sizes.concurrent_latency_ms)
        conn_id = set_connection("d6_bench_latency", handle)
        original = {
            pair: state
            for pair, state in integration_states(handle.control).items()
            if pair in pairs
        }
        flipped = _flipped(original, pairs)
        current = original
        rounds = []
        for number, serial_first in alternating(cfg.rounds):
            measured = {}
            for side in ("serial", "default") if serial_first else ("default", "serial"):
                target = flipped if current is original else original
                options = {"max_concurrency": 1} if side == "serial" else {}
                run = _apply(
                    handle, operator_class, f"apply_{side}_{number}", conn_id, target, **options
                )
                if not run["reconciled"] or run["changed"] != changes:
                    raise RuntimeError(
                        f"{side} run changed {run['changed']} of {changes} pairs: {run}"
                    )
                measured[side] = run
                current = target
            ratio = measured["serial"]["wall_s"] / measured["default"]["wall_s"]
            rounds.append(
                {"ratio": ratio, **{f"{k}_wall_s": v["wall_s"] for k, v in measured.items()}}
            )
            progress(
                f"concurrent_apply round {number + 1}/{cfg.rounds}: max_concurrency=1 "
                f"{measured['serial']['wall_s']:.1f}s, default {measured['default']['wall_s']:.1f}s "
                f"({ratio:.1f}x)"
            )
    ratio = median(r["ratio"] for r in rounds)
    return [
        Result(
            name="concurrent_apply",
            value=ratio,
            unit="ratio",
            target=str(CONCURRENCY_TARGET),
            passed=CONCURRENCY_TARGET.met(ratio),
            display=(
                f"{ratio:.1f}× ({median(r['serial_wall_s'] for r in rounds):.1f} s vs "
                f"{median(r['default_wall_s'] for r in rounds):.1f} s for {changes} changes)"
            ),
            details={
                "changes": changes,
                "latency_ms": cfg.sizes.concurrent_latency_ms,
                "serial_wall_s": median(r["serial_wall_s"] for r in rounds),
                "default_wall_s": median(r["default_wall_s"] for r in rounds),
                "rounds": rounds,
            },
        )
    ]
