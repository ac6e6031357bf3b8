"""Run the benchmarks, print a Markdown table and write ``bench/results/latest.json``.

Usage: ``make bench`` (or ``python bench/run.py``); ``--quick`` runs tiny sizes to check the
harness itself, ``--only NAME`` picks benchmarks, ``--output PATH`` writes the JSON elsewhere.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
MIN_ROUNDS = 5
TIME_BUDGET_S = 720  # the whole full-size run must finish within twelve minutes on two cores

# (benchmark names, module, function): one group shares a sandbox and is skipped as a whole.
GROUPS: list[tuple[tuple[str, ...], str, str]] = [
    (("cpu_per_request_vs_requests",), "bench.bench_transport", "cpu_per_request"),
    (("wall_vs_httphook",), "bench.bench_httphook", "wall_vs_httphook"),
    (("pagination_throughput", "pagination_memory"), "bench.bench_transport", "pagination"),
    (("reconcile_at_rate_limit", "reconcile_adaptive"), "bench.bench_reconcile", "reconcile"),
    (("concurrent_apply",), "bench.bench_reconcile", "concurrent_apply"),
    (("import_cost",), "bench.bench_startup", "import_cost"),
    (("dag_parse",), "bench.bench_startup", "dag_parse"),
    (("trigger_fleet",), "bench.bench_triggers", "trigger_fleet"),
    (
        ("fanout_at_rate_limit", "fanout_adaptive", "fanout_memory"),
        "bench.bench_fanout",
        "fanout_at_rate_limit",
    ),
    (("parallel_tasks_shared_limit",), "bench.bench_parallel", "parallel_tasks_shared_limit"),
    (("requests_per_school",), "bench.bench_requests", "requests_per_school"),
]
NAMES = [name for names, _, _ in GROUPS for name in names]


def _isolate_airflow(workdir: Path) -> None:
    """Give the harness its own Airflow home before anything imports Airflow."""
    home = workdir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Benchmarks talk only to loopback; never let a proxy setting reroute them.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    for name in [name for name in os.environ if name.startswith("AIRFLOW_CONN_")]:
        del os.environ[name]
    # Child interpreters cache bytecode in the scratch folder, as a pip-installed wheel has it.
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _route_logs_to_file(path: Path) -> None:
    """Keep the provider's INFO logging (users pay for it too) but send it to a file, not the table."""
    import structlog

    stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the run
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Airflow 3 renders its loggers with structlog; its factory writes to ``io`` (stdout if None).
    factory = structlog.get_config().get("logger_factory")
    if hasattr(factory, "io"):
        factory.io = stream


def _run_group(names: tuple[str, ...], function: Callable, cfg) -> list:
    from bench.common import Result, Skip, progress

    progress(f"running {', '.join(names)}")
    try:
        return function(cfg)
    except Skip as exc:
        reason = str(exc)
        progress(f"skipped {', '.join(names)}: {reason}")
        return [
            Result(name, None, "", "", False, f"skipped: {reason}", skipped=reason)
            for name in names
        ]
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        summary = f"{type(exc).__name__}: {exc}"
        progress(f"error in {', '.join(names)}: {summary}\n{traceback.format_exc()}")
        return [
            Result(
                name, None, "", "", False, f"error: {summary.splitlines()[0][:120]}", error=summary
            )
            for name in names
        ]


def _table(results: list) -> str:
    lines = ["| benchmark | measured | target | pass/fail |", "|---|---|---|---|"]
    for result in results:
        verdict = (
            "skipped"
            if result.skipped
            else "error"
            if result.error
            else ("pass" if result.passed else "**fail**")
        )
        lines.append(f"| `{result.name}` | {result.display} | {result.target} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; return 0 when all ran and passed, 1 on a miss, 2 if any did not run.

    :param argv: command-line arguments (default ``sys.argv[1:]``)
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: check the harness, not the figures"
    )
    parser.add_argument(
        "--only", action="append", default=[], help=f"benchmark to run ({', '.join(NAMES)})"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"rounds per benchmark (at least {MIN_ROUNDS})"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"JSON output (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs, Airflow home)"
    )
    args = parser.parse_args(argv)
    selected = {name for value in args.only for name in value.split(",") if name}
    if unknown := selected - set(NAMES):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    rounds = args.rounds or (1 if args.quick else MIN_ROUNDS)
    if rounds < MIN_ROUNDS and not args.quick:
        parser.error(f"--rounds must be at least {MIN_ROUNDS}: medians of fewer rounds are noise")
    if args.output is None and args.quick:
        parser.error("--quick needs --output: tiny-size figures must never replace latest.json")
    output = args.output or DEFAULT_OUTPUT

    workdir = Path(tempfile.mkdtemp(prefix="d6-bench-"))
    _isolate_airflow(workdir)
    import importlib

    from bench import common

    common.progress(f"scratch folder {workdir}")
    import airflow  # noqa: F401 - configures logging, which is then redirected

    _route_logs_to_file(workdir / "bench.log")
    cfg = common.Config(
        sizes=common.QUICK if args.quick else common.FULL,
        rounds=rounds,
        workdir=workdir,
        quick=args.quick,
    )
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = []
    try:
        for names, module, function in GROUPS:
            if selected and not selected.intersection(names):
                continue
            group = _run_group(names, getattr(importlib.import_module(module), function), cfg)
            results.extend(r for r in group if not selected or r.name in selected)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    duration = time.perf_counter() - started
    info = common.machine()
    document = {
        "machine": common.describe_machine(info),
        "machine_details": info,
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "within_time_budget": duration <= TIME_BUDGET_S,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "benchmarks": [result.to_json() for result in results],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(_table(results))
    print(f"\nMachine: {document['machine']}")
    budget = "" if duration <= TIME_BUDGET_S else f" (over the {TIME_BUDGET_S} s budget)"
    print(f"Duration: {duration:.0f} s{budget}; results written to {output}")
    if any(r.skipped or r.error for r in results):
        return 2
    return 0 if args.quick or all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
