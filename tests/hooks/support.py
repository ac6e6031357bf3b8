"""What the hook tests share: short backoffs and the sandbox's request log, filtered."""

from __future__ import annotations

from typing import Any

from airflow_provider_d6.hooks._retry import RetryPolicy

# Tests count attempts; they never wait for real backoffs.
FAST = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)


def d6_requests(control, path: str, method: str | None = None) -> list[dict[str, Any]]:
    """Return the logged d6 requests whose path ends with *path* (and of *method*)."""
    return [
        r
        for r in control.requests()
        if r["path"].endswith(path) and (method is None or r["method"] == method)
    ]
