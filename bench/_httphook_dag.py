"""Benchmark DAG: the same GETs through HttpHook.run() and through D6Hook, in alternating tasks.

Copied into a temporary dags folder by ``_httphook_child.py``; never part of ``dags/``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from airflow.sdk import DAG, task

SPEC = json.loads(Path(os.environ["D6_BENCH_SPEC"]).read_text())


def _record(side: str, round_no: int, started: float, sent: int) -> None:
    wall = time.perf_counter() - started
    with open(SPEC["results_path"], "a", encoding="utf-8") as results:
        results.write(
            json.dumps({"side": side, "round": round_no, "wall_s": wall, "gets": sent}) + "\n"
        )


@task
def httphook_loop(round_no: int) -> None:
    """Send the GETs with providers-http's HttpHook, one ``run()`` per request as its users do."""
    from airflow.providers.http.hooks.http import HttpHook

    started = time.perf_counter()
    hook = HttpHook(method="GET", http_conn_id="http_bench")
    sent = 0
    for _ in range(SPEC["calls"]):
        for request in SPEC["requests"]:
            school = request["school_id"]
            headers = {"HTTP-X-SCHOOLID": str(school)} if school is not None else None
            hook.run(request["endpoint"], data=request["query"], headers=headers).json()
            sent += 1
    _record("httphook", round_no, started, sent)


@task
def d6hook_loop(round_no: int) -> None:
    """Send the same GETs with D6Hook."""
    from airflow_provider_d6.hooks.d6 import D6Hook

    started = time.perf_counter()
    hook = D6Hook(d6_conn_id="d6_bench")
    for _ in range(SPEC["calls"]):
        hook.get_client_integration(SPEC["school_id"], SPEC["api_type_id"])
    _record("d6hook", round_no, started, SPEC["calls"] * len(SPEC["requests"]))


with DAG("d6_bench_wall_vs_httphook", schedule=None, catchup=False, tags=["benchmark"]):
    previous = None
    for number in range(SPEC["rounds"]):
        sides = [("httphook", httphook_loop), ("d6hook", d6hook_loop)]
        for name, side in sides if number % 2 == 0 else sides[::-1]:
            current = side.override(task_id=f"{name}_{number}")(number)
            if previous is not None:
                previous >> current
            previous = current
