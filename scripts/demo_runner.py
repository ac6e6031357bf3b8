"""Helpers for ``make demo``: talk to the sandbox's control API and run one DAG with ``dag.test``.

Usage (the environment — AIRFLOW_HOME, the d6_default connection — comes from scripts/demo.sh)::

    python scripts/demo_runner.py pick CONTROL_URL            # a school that has not authorised API 8
    python scripts/demo_runner.py state CONTROL_URL SCHOOL API
    python scripts/demo_runner.py authorise CONTROL_URL SCHOOL API
    python scripts/demo_runner.py run DAG_ID CONF_JSON LOG_FILE

``run`` sends Airflow's own output to LOG_FILE, shows the task progress as it happens, prints the
last task's result and exits non-zero unless the DagRun ended in success.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, TextIO

API_TYPES = {8: "Admin+ API", 9: "Curriculum+ API"}
DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"


def control(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the sandbox control API (loopback only, never authenticated) and return its JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base.rstrip('/')}/_sandbox/{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode() or "null"
    return json.loads(text)


def _records(value: Any) -> list[dict[str, Any]]:
    """Return the list of records of a control API answer (a list, or ``{"data": [...]}``)."""
    return value["data"] if isinstance(value, dict) and "data" in value else value


def pick(base: str) -> str:
    """Return ``school_id<TAB>api_type_id<TAB>school name`` of a school yet to authorise API 8."""
    listed = {(r["school_id"], r["api_type_id"]) for r in _records(control(base, "data/client_integrations"))}
    for school in _records(control(base, "data/schools")):
        if (school["school_id"], 8) not in listed:
            return f"{school['school_id']}\t8\t{school['school_name']}"
    raise SystemExit("every school in the sandbox has already authorised API 8")


def state(base: str, school_id: int, api_type_id: int) -> str:
    """Describe one pair's state from the sandbox's ground truth."""
    for record in _records(control(base, "data/client_integrations")):
        if record["school_id"] == school_id and record["api_type_id"] == api_type_id:
            if str(record["activated_by_integrator"]).lower() == "yes":
                return "authorised and activated"
            return "authorised, not activated"
    return "not authorised (not listed in Get Client Integrations)"


def authorise(base: str, school_id: int, api_type_id: int) -> str:
    """Do the school's side of onboarding: authorise us for the pair."""
    control(base, "authorise", {"school_id": school_id, "api_type_id": api_type_id})
    return f"school {school_id} authorised {API_TYPES.get(api_type_id, api_type_id)}"


# Lines of Airflow's output worth showing live, and how to show them.
_PROGRESS = [
    (re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)"), "task"),
    (re.compile(r"Deferring: (waiting for .*?)(?:\"|\s\[|$)"), "    ⏸  deferred to the triggerer, {0}"),
    (re.compile(r"Condition met after (\d+) poll"), "    ▶  condition met after {0} poll(s) in the triggerer"),
]


def _follow(log_path: Path, out: TextIO, stop: threading.Event) -> None:
    """Echo the progress lines of *log_path* to *out* until *stop* is set and the file is drained."""
    with open(log_path, encoding="utf-8", errors="replace") as stream:
        while True:
            line = stream.readline()
            if not line:
                if stop.is_set():
                    return
                time.sleep(0.2)
                continue
            for pattern, template in _PROGRESS:
                match = pattern.search(line)
                if not match:
                    continue
                if template == "task":
                    task_id, map_index = match.groups()
                    label = task_id if map_index == "-1" else f"{task_id}[{map_index}]"
                    print(f"    · {label}", file=out, flush=True)
                else:
                    print(template.format(*match.groups()), file=out, flush=True)
                break


def run(dag_id: str, conf: dict[str, Any], log_path: Path) -> int:
    """Run *dag_id* once with ``dag.test(run_conf=conf)``; return 0 when the run succeeded."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the terminal for the user and send everything Airflow prints to the log file.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(log_path, out, stop), daemon=True)
    follower.start()
    try:
        from airflow.dag_processing.dagbag import DagBag

        dagbag = DagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py"))
        if dagbag.import_errors or dag_id not in dagbag.dags:
            print(f"    ✗ {dag_id} failed to load: {dagbag.import_errors}", file=out)
            return 1
        started = time.monotonic()
        dag_run = dagbag.dags[dag_id].test(run_conf=conf)
        elapsed = time.monotonic() - started
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        stop.set()
        follower.join(timeout=5)
    return _report(dag_run, elapsed, out)


def _report(dag_run: Any, elapsed: float, out: TextIO) -> int:
    """Print each task's final state and the last task's result; return the exit status."""
    instances = sorted(dag_run.get_task_instances(), key=lambda ti: (ti.start_date or ti.end_date or 0, ti.map_index))
    failed = [ti for ti in instances if ti.state not in ("success", "skipped")]
    symbol = "✓" if dag_run.state == "success" else "✗"
    print(f"    {symbol} {dag_run.dag_id}: {dag_run.state} in {elapsed:.0f} s "
          f"({len(instances) - len(failed)} of {len(instances)} task(s) succeeded)", file=out)
    for ti in failed:
        label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        print(f"      {label}: {ti.state}", file=out)
    leaves = [ti for ti in instances if ti.task_id in {"summary", "report_drift"} and ti.state == "success"]
    if leaves:
        result = leaves[-1].xcom_pull(task_ids=leaves[-1].task_id)
        print("      result: " + json.dumps(result, indent=2, default=str).replace("\n", "\n      "), file=out)
    return 0 if dag_run.state == "success" else 1


def main(argv: list[str]) -> int:
    """Dispatch one sub-command."""
    command, *args = argv
    if command == "pick":
        print(pick(args[0]))
    elif command == "state":
        print(state(args[0], int(args[1]), int(args[2])))
    elif command == "authorise":
        print(authorise(args[0], int(args[1]), int(args[2])))
    elif command == "run":
        return run(args[0], json.loads(args[1]), Path(args[2]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
