"""Fast checks of the chaos run's own machinery (the full run is `make chaos`)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from e2e import chaos, harness

# A task process leads a process group of its own under its worker (Airflow's supervisor does
# setpgid), so killing the worker's group alone would leave it running: this stands for it.
WORKER_WITH_TASK = (
    'python3 -c \'import os, time; os.setpgid(0, 0); print("task", os.getpid(), flush=True); '
    "time.sleep(300)' & wait"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_stopping_a_component_ends_the_task_processes_in_their_own_groups(
    tmp_path: Path, sig: signal.Signals
) -> None:
    processes = harness.ProcessSet(tmp_path)
    worker = processes.start("worker", ["bash", "-c", WORKER_WITH_TASK], dict(os.environ))
    task = int(harness.wait_for_url_line(worker, r"task (\d+)", timeout=30))
    assert os.getpgid(task) == task != os.getpgid(worker.pid)

    processes.stop("worker", sig, grace=2)

    assert worker.exit_code() is not None
    assert not _alive(task)
    with pytest.raises(KeyError):
        processes.get("worker")


def test_a_restarted_process_reads_only_its_own_log(tmp_path: Path) -> None:
    processes = harness.ProcessSet(tmp_path)
    first = processes.start("worker", ["bash", "-c", "echo celery@a ready"], dict(os.environ))
    first.popen.wait(timeout=30)
    processes.stop("worker", signal.SIGKILL)
    second = processes.start("worker", ["bash", "-c", "sleep 300"], dict(os.environ))
    try:
        assert "celery@a ready" in second.log_text()
        assert second.log_text(since_start=True) == ""
        assert processes.get("worker") is second
    finally:
        processes.stop_all(grace=1)


def _patch(path: str, body: dict[str, int], status: int | None = 204, fault: str | None = None):
    return {"method": "PATCH", "path": path, "body": body, "status": status, "fault": fault}


def test_duplicate_writes_counts_writes_to_a_pair_after_its_first_success() -> None:
    log = [
        # The v2 route answering route_not_found is not a write.
        _patch(
            "/api/v2/settings/clientintegrations",
            {"school_id": 1008, "api_type_id": 8, "state": True},
            404,
        ),
        _patch("/api/v1/settings/clients/1008", {"api_type_id": 8, "state": 1}),
        _patch("/api/v1/settings/clients/1008", {"api_type_id": 9, "state": 1}),
        # Refused by an injected fault before d6 looked at it: not a write either.
        _patch("/api/v1/settings/clients/1009", {"api_type_id": 8, "state": 1}, 503, "503"),
        _patch("/api/v1/settings/clients/1009", {"api_type_id": 8, "state": 1}),
        # Sent again after 1008/8 was activated: what a retry must never do.
        _patch("/api/v1/settings/clients/1008", {"api_type_id": 8, "state": 1}, 422),
        {"method": "GET", "path": "/api/v1/settings/clients/1008", "status": 200},
    ]

    written, again = chaos.duplicate_writes(log)

    assert written == {(1008, 8): 1, (1008, 9): 1, (1009, 8): 1}
    assert again == 1


def test_trigger_deadline_is_found_in_the_serialized_kwargs_airflow_stores() -> None:
    stored = {
        "__var": {
            "school_id": 1008,
            "timeout": 1800.0,
            "deadline": 1767225600.25,
            "soft_fail": False,
        },
        "__type": "dict",
    }
    assert chaos.trigger_deadline(stored) == 1767225600.25
    assert chaos.trigger_deadline({"deadline": 17}) == 17.0
    with pytest.raises(harness.E2EFailure, match="no deadline"):
        chaos.trigger_deadline({"__var": {"timeout": 1800.0, "deadline": True}})


def test_stored_kwargs_reads_plain_and_encrypted_json() -> None:
    from cryptography.fernet import Fernet

    fernet = Fernet(Fernet.generate_key())
    kwargs = {"school_id": 1008, "deadline": 1796135922.59}
    encrypted = fernet.encrypt(json.dumps(kwargs).encode()).decode()

    assert chaos.stored_kwargs(json.dumps(kwargs), fernet) == kwargs
    assert chaos.stored_kwargs(encrypted, fernet) == kwargs
    assert chaos.trigger_deadline(chaos.stored_kwargs(encrypted, fernet)) == 1796135922.59


def test_the_table_lists_every_scenario_with_wrapped_cells() -> None:
    outcomes = [
        chaos.Outcome(
            "export",
            "worker SIGKILL after 9 of 51 pages",
            "passed (try 2)",
            "2500 records",
            "2500 records, 0 temp",
            "0",
            41.2,
        ),
        chaos.Outcome("note", "worker SIGKILL " + "x" * 60, "FAILED: 2 notes with the text exist"),
    ]

    table = chaos.format_table(outcomes)

    lines = table.splitlines()
    assert lines[0].split(" | ")[0].strip() == "scenario"
    assert any(line.startswith("export") and "41s" in line for line in lines)
    assert any(line.startswith("note") and line.rstrip().endswith("-") for line in lines)
    # A failure's reason is printed whole, under the table.
    assert lines[-1] == "  note: FAILED: 2 notes with the text exist"
    # Wrapped, a long cell never widens its column: every row splits where the header does.
    columns = _separators(lines[0])
    assert all(set(_separators(line)) <= set(columns) for line in lines[2:] if " | " in line)
    assert [o.passed for o in outcomes] == [True, False]


def _separators(line: str) -> list[int]:
    return [i for i in range(len(line)) if line.startswith(" | ", i)]


def test_stopping_reports_how_long_it_took(tmp_path: Path) -> None:
    processes = harness.ProcessSet(tmp_path)
    processes.start("sleeper", ["sleep", "300"], dict(os.environ))
    started = time.monotonic()
    took = processes.stop("sleeper", signal.SIGTERM)
    assert 0 <= took <= time.monotonic() - started
