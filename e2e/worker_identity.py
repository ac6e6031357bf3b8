"""Hostname callable for the Celery worker of the deployment test.

Every component of the test runs on one machine, so the real hostname cannot tell which process ran
a task. The worker alone is configured with ``[core] hostname_callable`` pointing here, so a task
instance whose ``hostname`` reads this name was executed by that Celery worker and nothing else.
"""

from __future__ import annotations

import os

DEFAULT_NAME = "d6-e2e-celery-worker"


def hostname() -> str:
    """Return the worker's name as task instances record it."""
    return os.environ.get("D6_E2E_WORKER_HOSTNAME", DEFAULT_NAME)
