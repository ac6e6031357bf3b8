"""Shared fixtures: an isolated Airflow home and a d6 sandbox over real HTTP on port 0.

Airflow reads its configuration when first imported, so the environment is set here, at the top
of the root conftest, before anything imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.support import PROJECT_ROOT, SANDBOX_PASSWORD, SANDBOX_USERNAME, connection_json

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix=f"d6-airflow-{_worker}-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(_AIRFLOW_HOME / "logs")
# Tests talk only to loopback; never let a proxy setting route sandbox traffic elsewhere.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

import pytest

from d6_sandbox.testing import SandboxHandle, run_sandbox


@pytest.fixture
def make_sandbox():
    """Start sandboxes with chosen options; each is stopped when the test ends."""
    stack = []

    def _make(**options) -> SandboxHandle:
        options.setdefault("username", SANDBOX_USERNAME)
        options.setdefault("password", SANDBOX_PASSWORD)
        options.setdefault("rate_limit", 0)
        cm = run_sandbox(**options)
        handle = cm.__enter__()
        stack.append(cm)
        return handle

    yield _make
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def sandbox(make_sandbox) -> SandboxHandle:
    """A fresh sandbox with the default seeded district, no rate limit and no faults."""
    return make_sandbox()


@pytest.fixture
def d6_conn(sandbox, monkeypatch) -> str:
    """Point the ``d6_default`` connection at the sandbox (environment, not the database)."""
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(sandbox, max_retries=3))
    return "d6_default"


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate this worker's SQLite metadata database once (needed by dag.test())."""
    from airflow.utils.db import initdb

    initdb()
    _build_the_in_process_execution_api_once()
    return _AIRFLOW_HOME


def _build_the_in_process_execution_api_once() -> None:
    """Give ``dag.test()`` one in-process execution API per process, as Airflow 3.2+ does.

    Airflow 3.1's supervisor builds a new one for every task: a FastAPI app with every versioned
    route, and an empty DAG bag that deserialises the DAG again for the task's first request. A
    15-task finance export then spends most of its time rebuilding it (three times as long as on
    3.3). 3.2 made ``in_process_api_server`` an ``lru_cache(maxsize=1)``; this does the same where
    it is not, so the DAG tests time the provider, not the rebuilds.
    """
    import functools

    from airflow.sdk.execution_time import supervisor

    build = supervisor.in_process_api_server
    if not hasattr(build, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)
