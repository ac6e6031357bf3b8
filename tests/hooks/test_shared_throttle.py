"""The throttle shared by every task of one host (``shared_throttle=host``): a file with fcntl locks.

Two ``SharedAdaptiveThrottle`` objects on one file behave as two processes do (each has its own
open file, and ``flock`` locks are per open file); the end-to-end test runs real child
processes against a rate-limited sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from airflow_provider_d6.exceptions import D6ConfigurationError
from airflow_provider_d6.hooks._throttle import (
    AdaptiveThrottle,
    SharedAdaptiveThrottle,
    make_throttle,
    shared_throttle_path,
)
from airflow_provider_d6.hooks.d6 import D6Hook
from tests.support import PROJECT_ROOT, connection_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_two_processes_with_a_fixed_rate_take_slots_from_one_schedule(tmp_path):
    clock = FakeClock()
    path = tmp_path / "throttle"
    one = SharedAdaptiveThrottle(path, rate=4.0, clock=clock)
    two = SharedAdaptiveThrottle(path, rate=4.0, clock=clock)

    waits = [throttle.reserve() for _ in range(4) for throttle in (one, two)]

    # Eight requests at 4/s together: one slot every 0.25 s, whichever task asks.
    assert waits == pytest.approx([i * 0.25 for i in range(8)])
    one.feedback(True)  # a fixed rate is what the user asked for: a 429 leaves it
    assert two.rate == 4.0


def test_a_429_seen_by_one_task_slows_every_task_down(tmp_path):
    clock = FakeClock()
    path = tmp_path / "throttle"
    one = SharedAdaptiveThrottle(path, decrease=0.5, increase=1.0, window=5.0, clock=clock)
    two = SharedAdaptiveThrottle(path, decrease=0.5, increase=1.0, window=5.0, clock=clock)
    # Unthrottled at first: the two send 20 requests a second together for two seconds.
    for _ in range(20):
        assert one.reserve() == 0.0 and two.reserve() == 0.0
        clock.now += 0.1
    assert two.rate is None

    one.feedback(True)

    # Half the rate both sent together (20/s), for both of them.
    assert two.rate == pytest.approx(10.0, rel=0.05)
    one.feedback(True)  # the same burst of 429s counts once
    assert two.rate == pytest.approx(10.0, rel=0.05)
    first, second = two.reserve(), one.reserve()
    assert first == 0.0 and second == pytest.approx(0.1, rel=0.05)
    clock.now += 3.0
    assert one.rate == pytest.approx(13.0, rel=0.05)


def test_a_garbled_state_file_starts_over_and_a_symlink_is_refused(tmp_path):
    path = tmp_path / "throttle"
    path.write_bytes(b"\xff" * 7)
    throttle = SharedAdaptiveThrottle(path, rate=2.0)
    assert throttle.reserve() == 0.0
    assert len(path.read_bytes()) > 7  # rewritten in its own format

    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        SharedAdaptiveThrottle(link)
    assert target.read_text() == "keep"


def test_the_state_file_is_private_and_named_without_the_credential(tmp_path, monkeypatch):
    monkeypatch.setenv("D6_SHARED_THROTTLE_DIR", str(tmp_path / "shared"))
    path = shared_throttle_path("https://integrate.d6plus.co.za/api", "integrator-name")
    assert "integrator-name" not in path
    assert path != shared_throttle_path("https://integrate.d6plus.co.za/api", "another")
    throttle = make_throttle(None, path)
    assert isinstance(throttle, SharedAdaptiveThrottle)
    assert os.stat(path).st_mode & 0o077 == 0
    assert os.stat(tmp_path / "shared").st_mode & 0o077 == 0
    assert isinstance(make_throttle(None), AdaptiveThrottle)


def path_of(sandbox) -> str:
    return shared_throttle_path(sandbox.base_url, sandbox.username)


def test_the_connection_extra_chooses_the_shared_throttle(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("D6_SHARED_THROTTLE_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_D6_SHARED", connection_json(sandbox, shared_throttle="host"))
    monkeypatch.setenv("AIRFLOW_CONN_D6_TYPO", connection_json(sandbox, shared_throttle="cluster"))

    hook = D6Hook("d6_shared")
    hook.get_client_integrations()
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(path_of(sandbox))]

    sandbox.control.clear_requests()
    with pytest.raises(D6ConfigurationError, match="shared_throttle must be one of none, host"):
        D6Hook("d6_typo").get_client_integrations()
    assert sandbox.control.requests() == []


CHILD = """
import json, sys, time
from airflow_provider_d6.hooks.d6 import D6Hook
hook = D6Hook("d6_shared")
hook.get_conn()
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all three start together
statuses = []
for _ in range(int(sys.argv[1])):
    statuses.append(len(hook.get_client_integrations(school_id=1000)))
print(json.dumps(statuses))
"""


def test_tasks_in_separate_processes_stay_under_one_limit_together(make_sandbox, tmp_path):
    sandbox = make_sandbox(schools=4, rate_limit=8)
    env = {
        **os.environ,
        "D6_SHARED_THROTTLE_DIR": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
        # Each task on its own would send 8 a second, so the three together three times d6's limit.
        "AIRFLOW_CONN_D6_SHARED": connection_json(
            sandbox, requests_per_second=8, shared_throttle="host", max_attempts=1
        ),
    }
    sandbox.control.clear_requests()
    # Late enough for each child to import Airflow and read its connection, even under load.
    start_at = str(time.time() + 15)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, "12", start_at],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]

    assert [child.returncode for child in children] == [0, 0, 0]
    assert all(json.loads(out.splitlines()[-1]) == [2] * 12 for out in outputs)
    statuses = [r["status"] for r in sandbox.control.requests()]
    assert len(statuses) == 36
    assert statuses.count(429) == 0
