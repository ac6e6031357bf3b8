"""Fixtures of the sandbox's own tests: a small district and a raw d6 client for it."""

from __future__ import annotations

import pytest
from sandbox_client import D6Client

from d6_sandbox.testing import SandboxHandle


@pytest.fixture
def small(make_sandbox) -> SandboxHandle:
    """A sandbox with a district small enough that a test can walk all of it."""
    return make_sandbox(schools=8, learners_per_school=60)


@pytest.fixture
def d6(small) -> D6Client:
    """A raw d6 client of the small sandbox."""
    return D6Client(small)


@pytest.fixture
def d6_docs(make_sandbox) -> D6Client:
    """A raw d6 client of a small sandbox in the ``docs`` profile (the v2 activation route works)."""
    return D6Client(make_sandbox(schools=8, learners_per_school=60, profile="docs"))
