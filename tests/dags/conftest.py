"""Fixtures for the example DAGs: the parsed DAGs folder and a small d6 district behind d6_default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT, connection_json

DAGS_DIR = PROJECT_ROOT / "dags"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@pytest.fixture(scope="session")
def dagbag():
    """Parse the DAGs folder once, the way the DAG processor does."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture
def district(make_sandbox, monkeypatch):
    """A sandbox with a few small schools, reachable as ``d6_default``.

    Eight schools cover every seeded integration state twice while keeping exports small.
    """
    handle = make_sandbox(schools=8, learners_per_school=12)
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(handle, max_retries=3))
    return handle


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
