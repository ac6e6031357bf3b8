"""What tests share besides fixtures: the sandbox credentials and a d6 connection for a sandbox.

Imported by ``tests/conftest.py`` before Airflow is, so it imports nothing of Airflow's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAGS_DIR = PROJECT_ROOT / "dags"

SANDBOX_USERNAME = "sandbox-user"
# A sentinel of 16+ characters so that any leak is unambiguous when logs are scanned.
SANDBOX_PASSWORD = "S3ntinel-pw-9f2c41d7e0"


def connection_json(handle: Any, **extra: Any) -> str:
    """Return the AIRFLOW_CONN_* JSON of a d6 connection to the sandbox *handle*."""
    return json.dumps(
        {
            "conn_type": "d6",
            "host": handle.base_url,
            "login": handle.username,
            "password": handle.password,
            "extra": extra,
        }
    )


def parse_dags(folder: Path = DAGS_DIR) -> Any:
    """Parse a DAGs folder the way the DAG processor does, with one try per task.

    Tests check what a single try of each task does: the example DAGs retry after a
    ``retry_delay`` of minutes, which ``dag.test()`` would wait out before trying again. Retries
    themselves are what ``make chaos`` tests, and ``tests/dags/test_dag_files.py`` checks that the
    DAGs declare them.
    """
    from airflow_provider_d6._compat import DagBag

    bag = DagBag(dag_folder=str(folder))
    for dag in bag.dags.values():
        for task in dag.tasks:
            task.retries = 0
    return bag
