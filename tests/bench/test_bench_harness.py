"""Smoke-run the benchmark harness at tiny sizes so that ``make bench`` cannot rot.

Asserts that every benchmark runs and that the JSON has the shape the README documents; never
asserts a timing or a pass/fail verdict (tiny sizes say nothing about speed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN = PROJECT_ROOT / "bench" / "run.py"
BENCHMARKS = [
    "cpu_per_request_vs_requests",
    "wall_vs_httphook",
    "pagination_throughput",
    "pagination_memory",
    "reconcile_at_rate_limit",
    "reconcile_adaptive",
    "concurrent_apply",
    "import_cost",
    "dag_parse",
    "trigger_fleet",
    "fanout_at_rate_limit",
    "fanout_adaptive",
    "fanout_memory",
    "parallel_tasks_shared_limit",
    "requests_per_school",
]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_measures_every_benchmark_and_writes_well_formed_json(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    latest = PROJECT_ROOT / "bench" / "results" / "latest.json"
    latest_before = latest.read_bytes() if latest.exists() else None

    proc = _run("--quick", "--output", str(output), timeout=840)

    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    document = json.loads(output.read_text())
    assert isinstance(document["machine"], str) and "cores" in document["machine"]
    assert document["mode"] == "quick"
    assert [b["name"] for b in document["benchmarks"]] == BENCHMARKS
    for bench in document["benchmarks"]:
        assert set(bench) == {"name", "value", "unit", "target", "pass", "details"}, bench
        assert isinstance(bench["value"], int | float) and bench["value"] == bench["value"], bench
        assert bench["unit"] in {"ratio", "MB", "ms"}
        assert bench["target"].startswith(("<= ", ">= "))
        assert isinstance(bench["pass"], bool)
        assert isinstance(bench["details"], dict) and bench["details"]
        # The Markdown table shows every benchmark with its verdict.
        row = next(line for line in proc.stdout.splitlines() if f"`{bench['name']}`" in line)
        assert row.rstrip().endswith(("| pass |", "| **fail** |")), row
    # A smoke run must never overwrite the committed full-size results.
    assert (latest.read_bytes() if latest.exists() else None) == latest_before


def test_fewer_than_five_rounds_are_refused_for_a_full_run() -> None:
    proc = _run("--rounds", "3")

    assert proc.returncode == 2
    assert "at least 5" in proc.stderr


def test_a_quick_run_needs_an_explicit_output(tmp_path: Path) -> None:
    proc = _run("--quick")

    assert proc.returncode == 2
    assert "--output" in proc.stderr


def test_unknown_benchmark_names_are_refused() -> None:
    proc = _run("--only", "cpu_per_request")

    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr
