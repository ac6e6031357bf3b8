"""Hook fixtures: a D6Hook (and its connection) pointed at a sandbox, with short backoffs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from airflow_provider_d6.hooks.d6 import D6Hook
from tests.hooks.support import FAST
from tests.support import connection_json

_ids = itertools.count()


@pytest.fixture
def connect(monkeypatch):
    """Return ``connect(handle, **extra) -> conn_id``: a fresh d6 connection to *handle*."""

    def _connect(handle, **extra: Any) -> str:
        conn_id = f"d6_hook_test_{next(_ids)}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(handle, **extra))
        return conn_id

    return _connect


@pytest.fixture
def make_hook(connect):
    """Return ``make_hook(handle, extra=None, **hook_kwargs) -> D6Hook`` with short backoffs."""
    hooks: list[D6Hook] = []

    def _make(handle, extra: dict[str, Any] | None = None, **kwargs: Any) -> D6Hook:
        kwargs.setdefault("retry_policy", FAST)
        hook = D6Hook(connect(handle, **(extra or {})), **kwargs)
        hooks.append(hook)
        return hook

    yield _make
    for hook in hooks:
        hook.close()


@pytest.fixture
def sandbox(make_sandbox):
    """A smaller district than the default (12 schools x 40 learners) keeps the hook tests quick."""
    return make_sandbox(schools=12, learners_per_school=40)


@pytest.fixture
def hook(sandbox, make_hook) -> D6Hook:
    """A D6Hook on the default sandbox."""
    return make_hook(sandbox)
