"""Helpers shared by the example-DAG tests: DagRun outcomes and the sandbox's request log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def writes(handle) -> list[dict[str, Any]]:
    """Return the d6 requests that could change something, from the sandbox's request log."""
    return [request for request in handle.control.requests() if request["method"] in WRITE_METHODS]


def task_states(dag_run) -> dict[tuple[str, int], str]:
    """Return ``{(task_id, map_index): state}`` for a finished DagRun."""
    return {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str, key: str = "return_value") -> Any:
    """Return a task's XCom value from a finished DagRun."""
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)
