"""What tests share besides fixtures: the sandbox credentials and a d6 connection for a sandbox.

Imported by ``tests/conftest.py`` before Airflow is, so it imports nothing of Airflow's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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
