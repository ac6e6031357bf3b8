"""Fixtures for the example DAGs: the parsed DAGs folder and a small district as d6_default."""

from __future__ import annotations

import json

import pytest
from dag_helpers import DAGS_DIR


@pytest.fixture(scope="session")
def dagbag():
    """Parse the DAGs folder once, the way the DAG processor does, with one try per task.

    The tests check what a single try of each task does; ``dag.test()`` would otherwise wait out
    the DAGs' retry_delay and try again. Retries themselves are what ``make chaos`` tests, and
    ``test_dag_files`` checks that the DAGs declare them.
    """
    from airflow_provider_d6._compat import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR))
    for dag in bag.dags.values():
        for task in dag.tasks:
            task.retries = 0
    return bag


@pytest.fixture
def district(make_sandbox, monkeypatch):
    """A sandbox with a few small schools, reachable as ``d6_default``.

    Eight schools cover every seeded integration state twice while keeping exports small.
    """
    handle = make_sandbox(schools=8, learners_per_school=12)
    connection = {
        "conn_type": "d6",
        "host": handle.base_url,
        "login": handle.username,
        "password": handle.password,
        "extra": {"max_retries": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    return handle
