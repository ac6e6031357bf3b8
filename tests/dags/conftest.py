"""Fixtures for the example DAGs: the parsed DAGs folder and a small district as d6_default."""

from __future__ import annotations

import json

import pytest

from tests.support import parse_dags


@pytest.fixture(scope="session")
def dagbag():
    """Parse the DAGs folder once, with one try per task (see ``support.parse_dags``)."""
    return parse_dags()


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
