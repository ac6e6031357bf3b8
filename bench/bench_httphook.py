"""Wall time of 1,000 GETs inside an Airflow task: providers-http HttpHook against D6Hook."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from bench.common import (
    BENCH_DIR,
    Config,
    Result,
    Target,
    child_env,
    median,
    progress,
    requests_log,
    require,
    run_child,
    sandbox,
    set_connection,
)

TARGET = Target(">=", 5)


def wall_vs_httphook(cfg: Config) -> list[Result]:
    """Run both loops as tasks of one DAG under ``dag.test()``, connections in the metadata DB.

    :param cfg: the harness configuration
    """
    d6_hook = require("airflow_provider_d6.hooks.d6", "D6Hook").D6Hook
    require("airflow.providers.http.hooks.http", "providers-http")
    with sandbox(schools=5, learners_per_school=5) as handle:
        school_id, api_type_id = min(
            (int(r["school_id"]), int(r["api_type_id"]))
            for r in handle.control.data("client_integrations")
        )
        handle.control.clear_requests()
        d6_hook(d6_conn_id=set_connection("d6_bench_probe", handle)).get_client_integration(
            school_id, api_type_id
        )
        base_path = urlparse(handle.base_url).path.rstrip("/")
        call = [
            {
                "endpoint": entry["path"][len(base_path) :].lstrip("/"),
                "query": dict(entry.get("query") or {}),
                "school_id": entry.get("school_id"),
            }
            for entry in requests_log(handle.control)
        ]
        home = cfg.workdir / "httphook-airflow-home"
        (home / "dags").mkdir(parents=True, exist_ok=True)
        spec = {
            "base_url": handle.base_url,
            "username": handle.username,
            "password": handle.password,
            "school_id": school_id,
            "api_type_id": api_type_id,
            "requests": call,
            "calls": max(1, cfg.sizes.httphook_gets // max(1, len(call))),
            "rounds": cfg.rounds,
            "results_path": str(home / "results.jsonl"),
            "dag_template": str(BENCH_DIR / "_httphook_dag.py"),
        }
        spec_path = home / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = child_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            D6_BENCH_SPEC=str(spec_path),
        )
        # The connections must come from the metadata database, as in a deployment.
        for name in [name for name in env if name.startswith("AIRFLOW_CONN_")]:
            del env[name]
        handle.control.clear_requests()
        progress(
            f"wall_vs_httphook: dag.test() of {cfg.rounds} rounds × 2 tasks in a fresh Airflow home"
        )
        outcome = run_child(
            [str(BENCH_DIR / "_httphook_child.py"), str(spec_path)], env=env, timeout=1200
        )
        statuses = [entry["status"] for entry in requests_log(handle.control)]
    sent = len(call) * spec["calls"]
    expected = 2 * sent * cfg.rounds
    if len(statuses) != expected or any(status != 200 for status in statuses):
        raise RuntimeError(
            f"the sandbox saw {len(statuses)} requests (expected {expected} answered 200)"
        )
    return [_result(outcome["rounds"], sent, cfg)]


def _result(records: list[dict[str, Any]], sent: int, cfg: Config) -> Result:
    by_round: dict[int, dict[str, float]] = {}
    for record in records:
        by_round.setdefault(record["round"], {})[record["side"]] = record["wall_s"]
    rounds = [
        {"round": number, **sides, "ratio": sides["httphook"] / sides["d6hook"]}
        for number, sides in sorted(by_round.items())
    ]
    if len(rounds) != cfg.rounds:
        raise RuntimeError(f"expected {cfg.rounds} rounds from the DAG run, got {records!r}")
    for entry in rounds:
        progress(
            f"wall_vs_httphook round {entry['round'] + 1}/{cfg.rounds}: HttpHook {entry['httphook']:.2f}s, "
            f"D6Hook {entry['d6hook']:.2f}s ({entry['ratio']:.1f}x)"
        )
    ratio = median(entry["ratio"] for entry in rounds)
    http_ms = median(entry["httphook"] for entry in rounds) / sent * 1e3
    d6_ms = median(entry["d6hook"] for entry in rounds) / sent * 1e3
    return Result(
        name="wall_vs_httphook",
        value=ratio,
        unit="ratio",
        target=str(TARGET),
        passed=TARGET.met(ratio),
        display=f"{ratio:.1f}× ({http_ms:.2f} ms vs {d6_ms:.2f} ms per GET)",
        details={
            "gets_per_side_per_round": sent,
            "httphook_ms_per_get": http_ms,
            "d6hook_ms_per_get": d6_ms,
            "connection_source": "metadata database",
            "runner": "dag.test()",
            "rounds": rounds,
        },
    )
