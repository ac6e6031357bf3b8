"""Shared pieces of the benchmark harness: sizes, targets, results, timing and the sandbox."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"

# Credentials of the sandboxes the benchmarks start; 16+ characters so a leak would be obvious.
BENCH_USERNAME = "bench-integrator"
BENCH_PASSWORD = "bench-Pw-7c1e93b2a5d4"

ADMIN_API = 8
CURRICULUM_API = 9
API_TYPES = (ADMIN_API, CURRICULUM_API)

_STARTED = time.perf_counter()


class Skip(Exception):
    """Raised by a benchmark whose subject (hook, operator, sandbox, DAGs) does not exist yet."""


@dataclass(frozen=True)
class Sizes:
    """Workload sizes of one harness run; the full run uses the sizes the issue prescribes."""

    cpu_requests: int = 2_000
    httphook_gets: int = 1_000
    pagination_records: int = 100_000
    memory_sizes: tuple[int, int] = (10_000, 100_000)
    reconcile_schools: int = 1_000
    rate_limit: int = 50
    concurrent_changes: int = 500
    concurrent_latency_ms: int = 50
    import_interpreters: int = 10
    dag_parse_rounds: int = 10
    fleet_triggers: int = 500
    fleet_schools: int = 800
    fleet_poke_interval_s: float = 5.0
    fleet_intervals: int = 6
    fleet_authorisations: int = 20
    fanout_learners: tuple[int, int] = (100, 1_000)
    parallel_tasks: int = 4
    parallel_learners_per_school: int = 2_500
    # The per-task-throttle comparison (shown, not a target) exports this share of each school:
    # the throughput it loses shows within the first 400 of the 1,000 pages.
    parallel_per_task_share: float = 0.4
    parallel_page: int = 10
    school_learners: int = 400


FULL = Sizes()
QUICK = Sizes(
    cpu_requests=40,
    httphook_gets=10,
    pagination_records=600,
    memory_sizes=(200, 600),
    reconcile_schools=15,
    concurrent_changes=16,
    import_interpreters=1,
    dag_parse_rounds=1,
    fleet_triggers=20,
    fleet_schools=40,
    fleet_poke_interval_s=1.0,
    fleet_intervals=3,
    fleet_authorisations=3,
    fanout_learners=(20, 60),
    parallel_learners_per_school=300,
    school_learners=40,
)


@dataclass(frozen=True)
class Config:
    """What one harness run measures and where it keeps its scratch files."""

    sizes: Sizes
    rounds: int
    workdir: Path
    quick: bool


@dataclass(frozen=True)
class Target:
    """A pass condition such as ``<= 1.15``; never loosened to make a figure pass."""

    op: str
    limit: float
    note: str = ""

    def met(self, value: float) -> bool:
        """Return whether *value* meets the target.

        :param value: the measured figure
        """
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        limit = f"{self.limit:g}" if self.limit == int(self.limit) else f"{self.limit:.2f}"
        text = f"{self.op} {limit}"
        return f"{text}, {self.note}" if self.note else text


@dataclass
class Result:
    """One row of the results table and of ``latest.json``."""

    name: str
    value: float | None
    unit: str
    target: str
    passed: bool
    display: str
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form the issue prescribes (plus ``skipped``/``error`` when set)."""
        out: dict[str, Any] = {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 4),
            "unit": self.unit,
            "target": self.target,
            "pass": self.passed,
            "details": self.details,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        if self.error:
            out["error"] = self.error
        return out


def scored(
    name: str,
    value: float,
    target: Target,
    display: str,
    details: dict[str, Any],
    *,
    also: bool = True,
    unit: str = "ratio",
) -> Result:
    """Return the row of a figure compared with *target*.

    :param name: benchmark name
    :param value: the measured figure
    :param target: what the figure must meet
    :param display: the table's "measured" cell
    :param details: what ``latest.json`` keeps besides the figure
    :param also: the benchmark's other pass conditions (no 429, exactly once, ...)
    :param unit: the figure's unit
    """
    return Result(
        name=name,
        value=value,
        unit=unit,
        target=str(target),
        passed=target.met(value) and also,
        display=display,
        details=details,
    )


def status_counts(log: Iterable[dict[str, Any]]) -> dict[int, int]:
    """Return how many of the sandbox's logged requests got each HTTP status.

    :param log: the result of :func:`requests_log`
    """
    counts: dict[int, int] = {}
    for entry in log:
        counts[int(entry["status"])] = counts.get(int(entry["status"]), 0) + 1
    return counts


def progress(message: str) -> None:
    """Print a progress line to stderr, so stdout keeps only the table."""
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    """Return the median of *values*.

    :param values: measurements of one quantity, one per round
    """
    return float(statistics.median(list(values)))


def alternating(rounds: int) -> Iterator[tuple[int, bool]]:
    """Yield ``(round, a_first)`` so that the side measured first alternates from round to round.

    :param rounds: how many rounds to run
    """
    for number in range(rounds):
        yield number, number % 2 == 0


def require(module: str, what: str) -> Any:
    """Import *module* or skip the benchmark with a reason saying which piece is missing.

    :param module: dotted module name
    :param what: what the module provides, for the skip reason
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{what} not available yet ({exc})") from exc


@contextlib.contextmanager
def sandbox(**options: Any) -> Iterator[Any]:
    """Start a d6 sandbox as a subprocess, so its CPU never counts against the client.

    :param options: ``run_sandbox`` options (schools, rate_limit, latency_ms, tls, ...)
    """
    testing = require("d6_sandbox.testing", "the d6 sandbox")
    options.setdefault("username", BENCH_USERNAME)
    options.setdefault("password", BENCH_PASSWORD)
    options.setdefault("rate_limit", 0)
    with testing.run_sandbox(process=True, **options) as handle:
        yield handle


def set_connection(conn_id: str, handle: Any, **extra: Any) -> str:
    """Point the Airflow connection *conn_id* at *handle* through an environment variable.

    :param conn_id: Airflow connection id
    :param handle: the sandbox handle
    :param extra: connection extras (``verify``, ``requests_per_second``, ...)
    """
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "d6",
            "host": handle.base_url,
            "login": handle.username,
            "password": handle.password,
            "extra": {key: value for key, value in extra.items() if value is not None},
        }
    )
    return conn_id


def integration_states(control: Any) -> dict[tuple[int, int], bool]:
    """Return the sandbox's ground truth: every listed pair and whether it is activated.

    :param control: the sandbox control client
    """
    return {
        (int(row["school_id"]), int(row["api_type_id"])): row["activated_by_integrator"] == "Yes"
        for row in control.data("client_integrations")
    }


def authorise_all(control: Any, limit: int | None = None) -> list[tuple[int, int]]:
    """Make every school authorise both API types and return the pairs, sorted.

    :param control: the sandbox control client
    :param limit: keep only the first *limit* pairs
    """
    listed = integration_states(control)
    schools = sorted(int(row["school_id"]) for row in control.data("schools"))
    pairs = [(school, api) for school in schools for api in API_TYPES]
    if limit is not None:
        pairs = pairs[:limit]
    for school_id, api_type_id in pairs:
        if (school_id, api_type_id) not in listed:
            control.authorise(school_id, api_type_id)
    return pairs


def requests_log(control: Any) -> list[dict[str, Any]]:
    """Return the d6 requests the sandbox received since its log was last cleared.

    :param control: the sandbox control client
    """
    return list(control.requests())


def maxrss_mb() -> float:
    """Return this process's peak resident set size in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_env(**overrides: str) -> dict[str, str]:
    """Return the environment for a child interpreter: ours, with the project importable.

    :param overrides: variables to set or replace
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    )
    env.update(overrides)
    return env


def run_child(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600
) -> Any:
    """Run a child interpreter and return the JSON document on its last stdout line.

    :param args: arguments after the interpreter (a script or ``-c`` code)
    :param env: the child's environment (default :func:`child_env`)
    :param timeout: seconds before the child is considered hung
    """
    proc = subprocess.run(
        [sys.executable, *args],
        check=False,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"child {args[0]} exited {proc.returncode}: " + "\n".join(tail))
    return json.loads(lines[-1])


def machine() -> dict[str, Any]:
    """Describe the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    try:
        from importlib.metadata import version

        airflow_version = version("apache-airflow")
        http_version = version("apache-airflow-providers-http")
        requests_version = version("requests")
    except Exception:  # noqa: BLE001 - the description is best effort
        airflow_version = http_version = requests_version = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "airflow": airflow_version,
        "providers_http": http_version,
        "requests": requests_version,
    }


def describe_machine(info: dict[str, Any]) -> str:
    """Return the one-line machine description written to ``latest.json``.

    :param info: the result of :func:`machine`
    """
    memory = f", {info['memory_gb']} GB RAM" if info.get("memory_gb") else ""
    return (
        f"{info['cpu']}, {info['cores']} cores{memory}, {info['os']}, "
        f"Python {info['python']}, Airflow {info['airflow']}, "
        f"providers-http {info['providers_http']}, requests {info['requests']}"
    )
