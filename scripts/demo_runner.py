"""Run the four example DAGs once each against a running d6 sandbox, for ``make demo``.

Usage (scripts/demo.sh sets up AIRFLOW_HOME, the metadata database and ``d6_default`` first)::

    python scripts/demo_runner.py CONTROL_URL DEMO_HOME

All four runs share one process, so Airflow's in-process execution API starts only once. Airflow's
own output goes to ``DEMO_HOME/logs/<dag_id>.log``; the terminal gets the task progress as it
happens and a short result per DAG. The exit status is non-zero unless every DagRun succeeded.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"
# Seconds into the sensor's wait at which the sandbox plays the school authorising us.
AUTHORISE_AFTER_SECONDS = 5
DIM, OFF = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")


class Sandbox:
    """The sandbox's control API: the school's side of onboarding, and ground truth."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/_sandbox/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode() or "null")

    def unauthorised_school(self, api_type_id: int) -> dict[str, Any]:
        """Return the first seeded school that has not authorised *api_type_id* yet."""
        listed = {
            (r["school_id"], r["api_type_id"]) for r in self._call("data/client_integrations")
        }
        for school in self._call("data/schools"):
            if (school["school_id"], api_type_id) not in listed:
                return school
        raise SystemExit(
            f"every school in the sandbox has already authorised API type {api_type_id}"
        )

    def state(self, school_id: int, api_type_id: int) -> str:
        """Describe one pair's state in words, from the sandbox's ground truth."""
        for record in self._call(f"data/client_integrations?school_id={school_id}"):
            if record["api_type_id"] == api_type_id:
                if str(record["activated_by_integrator"]).lower() == "yes":
                    return "authorised and activated"
                return "authorised, not activated"
        return "not authorised (not listed by Get Client Integrations)"

    def schools_with_both_modules(self) -> list[int]:
        """Return the schools with Admin+ (8) and Curriculum+ (9) both activated."""
        activated: dict[int, set[int]] = {}
        for record in self._call("data/client_integrations"):
            if str(record["activated_by_integrator"]).lower() == "yes":
                activated.setdefault(record["school_id"], set()).add(record["api_type_id"])
        return sorted(school for school, types in activated.items() if {8, 9} <= types)

    def authorise(self, school_id: int, api_type_id: int) -> None:
        """Authorise the integrator for the pair, as a person at the school would in d6+ SAMS."""
        self._call("authorise", {"school_id": school_id, "api_type_id": api_type_id})


# Lines of Airflow's output worth showing live, and how to show them.
_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
# The last line of a traceback: "package.module.SomeError: message".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout)): (.*)$")
_DEFERRING = re.compile(r"Deferring: (waiting for .*?)\.?\s+\[")
_PROGRESS = [
    (_DEFERRING, "      deferred to the triggerer, {0}"),
    (
        re.compile(r"Condition met after (\d+) poll"),
        "      the triggerer saw it after {0} poll(s); resuming",
    ),
    (re.compile(r"Condition met: (.*?)\.\s+\["), "      already there: {0}"),
]


def _follow(
    log_path: Path, out: TextIO, stop: threading.Event, on_defer: Callable[[], None] | None
) -> None:
    """Echo the progress lines of *log_path* to *out* until *stop* is set and it is drained."""
    mapped_seen: set[str] = set()
    with open(log_path, encoding="utf-8", errors="replace") as stream:
        while True:
            line = stream.readline()
            if not line:
                if stop.is_set():
                    return
                time.sleep(0.2)
                continue
            started = _STARTING.search(line)
            if started:
                task_id, map_index = started.groups()
                if map_index == "-1":
                    print(f"    · {task_id}", file=out, flush=True)
                elif task_id not in mapped_seen:
                    mapped_seen.add(task_id)
                    per = "lookup" if task_id == "export_lookups" else "school"
                    print(f"    · {task_id} (mapped: one task per {per})", file=out, flush=True)
                continue
            for pattern, template in _PROGRESS:
                match = pattern.search(line)
                if match:
                    print(template.format(*match.groups()), file=out, flush=True)
                    if pattern is _DEFERRING and on_defer is not None:
                        on_defer()
                    break


def run_dag(
    dag_id: str,
    conf: dict[str, Any],
    log_path: Path,
    out: TextIO,
    on_defer: Callable[[], None] | None = None,
) -> Any:
    """Run *dag_id* once with ``dag.test(run_conf=conf)``, Airflow's output going to *log_path*."""
    from airflow_provider_d6._compat import DagBag

    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(log_path, out, stop, on_defer), daemon=True)
    follower.start()
    started = time.monotonic()
    try:
        dagbag = DagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py"))
        if dagbag.import_errors or dag_id not in dagbag.dags:
            raise SystemExit(f"{dag_id} failed to load: {dagbag.import_errors}")
        dag_run = dagbag.dags[dag_id].test(run_conf=conf)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        stop.set()
        follower.join(timeout=5)
    _print_outcome(dag_run, time.monotonic() - started, log_path, out)
    return dag_run


def _print_outcome(dag_run: Any, elapsed: float, log_path: Path, out: TextIO) -> None:
    """Print the run's state, its failed task instances and, on failure, Airflow's errors."""
    instances = list(dag_run.get_task_instances())
    failed = sorted(
        (ti for ti in instances if ti.state not in ("success", "skipped")),
        key=lambda ti: (ti.task_id, ti.map_index),
    )
    ok = dag_run.state == "success"
    print(
        f"    {'✓' if ok else '✗'} {dag_run.dag_id}: {dag_run.state} in {elapsed:.0f} s "
        f"({len(instances) - len(failed)} of {len(instances)} task instances succeeded)",
        file=out,
    )
    for ti in failed:
        label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        print(f"      {label}: {ti.state}", file=out)
    if not ok:
        for message in _errors(log_path)[:3]:
            print(f"      error: {message}", file=out)


def _errors(log_path: Path) -> list[str]:
    """Return the distinct exceptions (last line of each traceback) in Airflow's output."""
    messages: list[str] = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match:
            message = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
            if message not in messages:
                messages.append(message)
    return messages


def _print_log_path(log_path: Path, out: TextIO) -> None:
    """Say where Airflow's full output of a run is."""
    print(f"    log: {os.path.relpath(log_path)}", file=out)


def _result(dag_run: Any, task_id: str) -> Any:
    """Return the XCom a task of a finished run returned, or None."""
    ti = next((ti for ti in dag_run.get_task_instances() if ti.task_id == task_id), None)
    return None if ti is None or ti.state != "success" else ti.xcom_pull(task_ids=task_id)


def onboarding(sandbox: Sandbox, logs: Path, out: TextIO) -> tuple[bool, int]:
    """Onboard a school that has not authorised us yet; the sandbox authorises it mid-wait."""
    school = sandbox.unauthorised_school(api_type_id=8)
    school_id = school["school_id"]
    before = sandbox.state(school_id, 8)
    print(f"    school {school_id} ({school['school_name']}), Admin+ API: {before}", file=out)
    print(
        f"    the sandbox will play the school and authorise us "
        f"{AUTHORISE_AFTER_SECONDS} s into the wait",
        file=out,
    )

    def authorise_later() -> None:
        def authorise() -> None:
            sandbox.authorise(school_id, 8)
            print(
                f"      {DIM}[sandbox] school {school_id} authorised the Admin+ API{OFF}",
                file=out,
                flush=True,
            )

        timer = threading.Timer(AUTHORISE_AFTER_SECONDS, authorise)
        timer.daemon = True
        timer.start()

    conf = {"school_id": school_id, "api_type_id": 8, "wait_for_authorisation_minutes": 3}
    dag_run = run_dag(
        "d6_onboarding", conf, logs / "d6_onboarding.log", out, on_defer=authorise_later
    )
    summary = _result(dag_run, "summary")
    if summary:
        print(
            f"      {summary['school_name']}: {summary['before']} → {summary['after']}; waited "
            f"{summary['waited_for_authorisation_seconds']:.0f} s for the school, "
            f"{summary['total_seconds']:.0f} s from lookup to verified",
            file=out,
        )
    after = sandbox.state(school_id, 8)
    print(f"    before: {before}\n    after:  {after}", file=out)
    announced = _result(dag_run, "announce_activation")
    if announced:
        print(
            f"    announced on the Asset d6://client-integrations/activated: {announced} "
            "(a scheduler starts d6_school_sync for it at once)",
            file=out,
        )
    _print_log_path(logs / "d6_onboarding.log", out)
    return dag_run.state == "success" and after == "authorised and activated", school_id


def reconciliation(logs: Path, out: TextIO) -> bool:
    """Bring the sandbox to the sample desired states shipped in dags/."""
    dag_run = run_dag("d6_nightly_reconciliation", {}, logs / "d6_nightly_reconciliation.log", out)
    report = _result(dag_run, "report_drift")
    if report:

        def pairs(entries: list[dict[str, Any]], with_state: bool = False) -> str:
            shown = [
                f"{e['school_id']}/{e['api_type_id']}"
                + ((" → activated" if e["activated"] else " → deactivated") if with_state else "")
                for e in entries
            ]
            return ", ".join(shown) or "none"

        print(
            f"      changed (school/API type): {pairs(report['changed'], with_state=True)}",
            file=out,
        )
        print(
            f"      already as desired: {len(report['unchanged'])}; "
            "not authorised by the school yet: "
            f"{pairs(report['not_authorised'])}; failed: {pairs(report['failed'])}",
            file=out,
        )
    _print_log_path(logs / "d6_nightly_reconciliation.log", out)
    return dag_run.state == "success"


def finance_export(storage_root: Path, logs: Path, out: TextIO) -> bool:
    """Export every activated school's learners, age analysis and today's transactions."""
    dag_run = run_dag(
        "d6_finance_export",
        {"storage_root": str(storage_root)},
        logs / "d6_finance_export.log",
        out,
    )
    summary = _result(dag_run, "summary")
    if summary:
        print(
            f"      {len(summary['files'])} files for {summary['schools']} activated schools",
            file=out,
        )
    _print_log_path(logs / "d6_finance_export.log", out)
    return dag_run.state == "success"


def school_sync(
    sandbox: Sandbox, onboarded: int, storage_root: Path, logs: Path, out: TextIO
) -> bool:
    """Sync the school onboarded above and one with both modules; show what was written."""
    schools = [onboarded, *sandbox.schools_with_both_modules()[:1]]
    print(
        f"    schools {', '.join(map(str, schools))}: the one just onboarded (what its activation "
        "event starts) and one with Admin+ and Curriculum+",
        file=out,
    )
    dag_run = run_dag(
        "d6_school_sync",
        {"storage_root": str(storage_root), "school_ids": schools},
        logs / "d6_school_sync.log",
        out,
    )
    summary = _result(dag_run, "summary")
    if summary:
        print(
            f"      {len(summary['files'])} files, absentees and discipline of {summary['day']}",
            file=out,
        )
        prefix = f"file://{storage_root}/"
        for path, count in summary["records"].items():
            print(f"      {count:6d} records  {path.removeprefix(prefix)}", file=out)
        for skip in summary["skipped"]:
            print(
                f"      skipped {skip['task_id']} for school {skip['school_id']}: {skip['reason']}",
                file=out,
            )
        print(f"      pseudonymised: {', '.join(summary['pseudonymised_fields'])}", file=out)
        print(f"      dropped: {', '.join(summary['dropped_fields'])}", file=out)
        parents = storage_root / str(onboarded) / "parents.jsonl"
        if parents.exists():
            first = json.loads(parents.read_text(encoding="utf-8").splitlines()[0])
            shown = {k: first.get(k) for k in ("id", "first_name", "id_number", "mobile_number")}
            print(f"      first parent of school {onboarded}: {shown}", file=out)
    _print_log_path(logs / "d6_school_sync.log", out)
    return dag_run.state == "success"


def main(argv: list[str]) -> int:
    """Run the four DAGs in order; stop at the first that does not succeed."""
    control_url, demo_home = argv
    sandbox, home = Sandbox(control_url), Path(demo_home)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Keep a handle on the terminal: fds 1 and 2 are pointed at each DAG's log file in turn.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    onboarded: list[int] = []

    def onboard() -> bool:
        ok, school_id = onboarding(sandbox, logs, out)
        onboarded.append(school_id)
        return ok

    steps = [
        ("1/4  d6_onboarding: wait for a school to authorise us, then activate", onboard),
        (
            "2/4  d6_nightly_reconciliation: apply dags/d6_desired_states.yaml",
            lambda: reconciliation(logs, out),
        ),
        (
            "3/4  d6_finance_export: export every activated school's Finance+ data",
            lambda: finance_export(home / "data", logs, out),
        ),
        (
            "4/4  d6_school_sync: Admin+ and Curriculum+ records, personal fields pseudonymised",
            lambda: school_sync(sandbox, onboarded[0], home / "sync", logs, out),
        ),
    ]
    bold, off = ("\033[1m", "\033[0m") if out.isatty() else ("", "")
    for title, step in steps:
        print(f"\n{bold}==> {title}{off}", file=out)
        if not step():
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
