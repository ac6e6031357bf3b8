"""`make e2e`: the provider in a production-shape Airflow, driven through REST and a real browser.

PostgreSQL metadata database, CeleryExecutor on Redis with the database as result backend, and the
scheduler, dag-processor, triggerer, api-server and one Celery worker each in its own process.
Everything started is stopped by pid, and the database dropped, however the run ends.

Usage: python e2e/run.py [--break hook-import|trigger-serialize] [--skip-browser] [--keep]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from e2e import diagnosis, harness, scenario
from e2e.airflow_api import AirflowAPI
from e2e.breakage import BREAKAGES, make_broken_copy
from e2e.deployment import Deployment
from e2e.harness import E2EFailure, ProcessSet, step
from e2e.sandbox import Sandbox, start_sandbox

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT / "e2e" / "artifacts"
D6_EXTRA_FIELDS = ("timeout", "max_attempts", "requests_per_second", "activation_route", "verify")


class Run:
    """One deployment test: what it started, so that all of it can be torn down.

    :param args: the parsed command line
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(tempfile.mkdtemp(prefix="d6-e2e-"))
        self.others = ProcessSet(self.run_dir)
        self.sandbox: Sandbox | None = None
        self.deployment: Deployment | None = None
        self.database: str | None = None
        self.redis_db: int | None = None
        self.pseudonym_key: str | None = None
        self.tracker = scenario.Tracker()
        self.timings: dict[str, float] = {}

    def timed(self, label: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one step, print it, and remember how long it took.

        :param label: the step, as printed and in the timing table
        :param func: what the step does
        """
        step(f"--- {label}")
        start = time.monotonic()
        result = func(*args, **kwargs)
        self.timings[label] = time.monotonic() - start
        return result

    def execute(self) -> None:
        """Run every step; raise on the first failure."""
        args = self.args
        harness.check_postgres()
        harness.check_redis()
        if not args.skip_browser:
            from e2e.browser import ensure_chromium

            ensure_chromium()
        self.sandbox = self.timed("start the d6 sandbox", start_sandbox, self.others)
        step(f"sandbox at {self.sandbox.base_url}")
        self.timed("start Airflow", self.start_airflow)
        api = self.deployment.api()
        self.timed("check the connection form", scenario.check_connection_form, api)
        self.timed("create and test d6_default", scenario.create_connection, api, self.sandbox)
        # Before unpausing: d6_school_sync's scheduled run needs it.
        self.pseudonym_key = self.timed(
            "store the pseudonym key", scenario.create_pseudonym_key, api
        )
        self.timed("parse and unpause the DAGs", scenario.wait_for_dags, api, scenario.DAG_IDS)
        deployment = self.deployment
        facts = self.timed(
            "onboard a school",
            scenario.onboarding,
            api,
            self.sandbox,
            self.tracker,
            lambda run_id, task_id: deployment.scheduler_saw_deferral(
                scenario.ONBOARDING, run_id, task_id
            ),
        )
        self.timed(
            "the activation event starts the school sync",
            scenario.school_sync_follows,
            api,
            facts,
            self.tracker,
        )
        self.timed(
            "start the finance export and reconciliation",
            scenario.start_data_runs,
            api,
            self.tracker,
        )
        if not args.skip_browser:
            self.timed("browser checks", self.browser_checks, api)
        counts = self.timed(
            "finish every run",
            scenario.finish_runs,
            api,
            (
                scenario.FINANCE_EXPORT,
                scenario.RECONCILIATION,
                scenario.ONBOARDING,
                scenario.SCHOOL_SYNC,
            ),
            timeout=480,
        )
        self.timed("scan everything written for credentials", self.scan_for_credentials)
        results = harness.count_celery_results(self.database)
        step(f"runs succeeded per DAG: {counts}; Celery results stored: {results}")
        step(f"onboarding summary: {facts['summary'][:200]}")

    def start_airflow(self) -> None:
        """Create the database, pick a broker db, migrate, start the five components."""
        self.database = harness.new_database_name()
        harness.create_database(self.database)
        self.redis_db = harness.pick_redis_db()
        step(
            f"PostgreSQL database {self.database}, Redis db {self.redis_db}, run folder {self.run_dir}"
        )
        deployment = Deployment(
            self.run_dir,
            self.database,
            self.redis_db,
            self.dags_folder(),
            extra_env=self.extra_env(),
        )
        if self.args.break_:
            breakage = BREAKAGES[self.args.break_]
            copy = make_broken_copy(self.args.break_, self.run_dir / "broken")
            step(f"BREAKING ON PURPOSE: {breakage.description} (copy in {copy})")
            if breakage.worker_only:
                deployment.worker_python_path.append(copy)
            else:
                deployment.python_path.append(copy)
        self.deployment = deployment
        deployment.prepare()
        deployment.migrate()
        deployment.start()
        states = deployment.wait_healthy()
        step(f"healthy: {states}; api-server at {deployment.api_url}")

    def dags_folder(self) -> Path:
        """Return the DAG folder the deployment parses."""
        return Path(self.args.dags_folder).resolve()

    def extra_env(self) -> dict[str, str]:
        """Return settings every component gets on top of the deployment's own (none here)."""
        return {}

    def browser_checks(self, api: AirflowAPI) -> None:
        """Drive the UI: connection form, trigger form, a run started from it."""
        from airflow_provider_d6.get_provider_info import get_provider_info
        from e2e.browser import ConnectionFormSpec, TriggerFormSpec, open_ui

        connection_type = get_provider_info()["connection-types"][0]
        labels = {name: spec["label"] for name, spec in connection_type["conn-fields"].items()}
        assert self.sandbox is not None and self.deployment is not None
        connection = ConnectionFormSpec(
            connection_id="d6_from_ui",
            type_label=connection_type["hook-name"],
            relabelled={
                "host": "Base URL",
                "login": "Integrator username",
                "password": "Integrator password",
            },
            hidden=["schema", "port"],
            extra_fields={name: labels[name] for name in D6_EXTRA_FIELDS},
            values={
                "host": self.sandbox.base_url,
                "login": self.sandbox.username,
                "password": self.sandbox.password,
                "timeout": "20",
                "max_attempts": "2",
            },
        )
        school_id, api_type_id = scenario.pick_activated_pair(self.sandbox)
        trigger = TriggerFormSpec(
            dag_id=scenario.ONBOARDING,
            params=["school_id", "api_type_id", "wait_for_authorisation_minutes", "dry_run"],
            dropdown_param="api_type_id",
            dropdown_label="API type",
            dropdown_options=list(scenario.API_TYPES.values()),
            dropdown_choice=scenario.API_TYPES[api_type_id],
            values={"school_id": str(school_id), "wait_for_authorisation_minutes": "5"},
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()
        with open_ui(self.deployment.api_url, ARTIFACTS) as ui:
            ui.login("admin", self.deployment.admin_password)
            ui.check_connection_form(connection)
            stored = api.get_connection("d6_from_ui")
            step(f"saved through the UI: conn_type={stored['conn_type']} extra={stored['extra']}")
            if stored["conn_type"] != "d6" or '"max_attempts": 2' not in (stored["extra"] or ""):
                raise E2EFailure(f"the connection saved in the UI was stored as {stored}")
            step(
                f"its test with the stored password: {scenario.test_saved_connection(api, 'd6_from_ui')}"
            )
            run_id = ui.trigger_from_form(trigger)
            self.tracker.add(scenario.ONBOARDING, run_id)
            scenario.require_ui_run(
                api, run_id, {"school_id": school_id, "api_type_id": api_type_id}
            )
            scenario.wait_for_run(api, scenario.ONBOARDING, run_id, timeout=300)
            step(f"UI-triggered run {run_id} succeeded")
            ui.show_run(scenario.ONBOARDING, run_id)
        step(f"{len(ui.screenshots)} screenshots in {ARTIFACTS}")

    def scan_for_credentials(self) -> None:
        """Fail when the sandbox password is in any file the run wrote, or the username in a task log."""
        assert self.sandbox is not None and self.deployment is not None
        texts = {
            str(path.relative_to(self.run_dir)): path.read_text("utf-8", "replace")
            for path in self.run_dir.rglob("*")
            if path.is_file()
            and path.suffix in {".log", ".json", ".jsonl", ".csv", ""}
            and "broken" not in path.parts
        }
        leaks = diagnosis.find_leaks(self.sandbox.password, texts)
        if self.pseudonym_key:
            leaks += [
                f"{k} (pseudonym key)" for k in diagnosis.find_leaks(self.pseudonym_key, texts)
            ]
        # Task logs are where Airflow's masker really runs: the username must not be there either.
        task_logs_dir = str(self.deployment.task_log_dir.relative_to(self.run_dir))
        task_logs = {k: v for k, v in texts.items() if k.startswith(f"{task_logs_dir}/")}
        if not task_logs:
            raise E2EFailure(f"no task log files under {task_logs_dir} to scan")
        leaks += [f"{k} (username)" for k in diagnosis.find_leaks(self.sandbox.username, task_logs)]
        if leaks:
            raise E2EFailure(f"the sandbox password or username was written to: {leaks}")
        step(
            f"the sandbox password and the pseudonym key appear in none of {len(texts)} files "
            "written by the run, "
            f"the username in none of its {len(task_logs)} task log files"
        )

    def report_failure(self, exc: BaseException) -> list[str]:
        """Print what failed, the likely cause and the relevant log tails; return the causes."""
        print("\n" + "=" * 100, flush=True)
        print(f"E2E FAILED: {exc}", flush=True)
        if isinstance(exc, E2EFailure) and exc.hint:
            print(f"hint: {exc.hint}", flush=True)
        if not isinstance(exc, E2EFailure):
            traceback.print_exception(exc)
        sources = self.failure_sources()
        findings = diagnosis.diagnose(sources)
        if findings:
            print("\nLikely cause:", flush=True)
            for finding in findings:
                print(f"  - {finding}", flush=True)
        else:
            print("\nNo known failure signature in the logs; the tails below may tell.", flush=True)
        shown = [label for label in sources if any(f.startswith(f"{label}: ") for f in findings)]
        if not shown:
            dead = (
                self.deployment.processes.dead()
                if self.deployment and self.deployment.processes
                else None
            )
            shown = [
                label
                for label in sources
                if label.startswith("task log") or (dead and label == f"{dead.split()[0]}.log")
            ]
        if isinstance(exc, E2EFailure):
            shown += [Path(log).name for log in exc.logs if Path(log).name in sources]
        for label in dict.fromkeys(shown):
            lines = [line[:400] for line in sources[label].splitlines()[-25:]]
            print(f"\n----- last lines of {label} -----\n" + "\n".join(lines), flush=True)
        print("=" * 100, flush=True)
        return findings

    def failure_sources(self) -> dict[str, str]:
        """Collect the text a diagnosis looks at: failed tasks' logs, then component logs."""
        sources: dict[str, str] = {}
        if self.deployment is not None:
            try:
                api = self.deployment.api()
                for dag_id, run_id in self.tracker.runs:
                    for ti in api.task_instances(dag_id, run_id):
                        if (
                            ti["state"] in ("failed", "up_for_retry", "upstream_failed")
                            and ti["try_number"]
                        ):
                            label = f"task log {dag_id}.{ti['task_id']}"
                            sources[label] = api.task_log(
                                dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"]
                            )
            except Exception as exc:  # noqa: BLE001 - the api-server may be the thing that broke
                sources["REST API"] = f"could not fetch task logs: {exc}"
            for process in [*self.others.processes, *(self.deployment.processes.processes or [])]:
                sources[f"{process.name}.log"] = harness.tail(process.log_path, 400)
            migrate = self.deployment.log_dir / "db-migrate.log"
            if migrate.exists():
                sources["db-migrate.log"] = harness.tail(migrate, 200)
        else:
            for process in self.others.processes:
                sources[f"{process.name}.log"] = harness.tail(process.log_path, 400)
        return sources

    def teardown(self) -> None:
        """Stop everything by pid, drop the database, flush the broker db."""
        if self.args.keep and self.deployment is not None:
            step(f"--keep: Airflow stays up at {self.deployment.api_url}; press Enter to tear down")
            with contextlib.suppress(EOFError):
                input()
        if self.deployment is not None:
            self.deployment.teardown()
        self.others.stop_all()
        if self.database:
            try:
                harness.drop_database(self.database)
                step(f"dropped database {self.database}")
            except Exception as exc:  # noqa: BLE001 - report and go on tearing down
                step(f"warning: could not drop database {self.database}: {exc}")
        if self.redis_db is not None:
            try:
                harness.flush_redis_db(self.redis_db)
                step(f"flushed Redis db {self.redis_db}")
            except Exception as exc:  # noqa: BLE001
                step(f"warning: could not flush Redis db {self.redis_db}: {exc}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments (default: sys.argv)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--break",
        dest="break_",
        choices=sorted(BREAKAGES),
        help="run against a deliberately broken copy of the provider; the run must fail and say why",
    )
    parser.add_argument("--skip-browser", action="store_true", help="skip the Chromium steps")
    parser.add_argument("--keep", action="store_true", help="wait for Enter before tearing down")
    parser.add_argument("--dags-folder", default=str(PROJECT / "dags"), help="DAGs to deploy")
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None,
    run_type: type[Run] = Run,
    parse: Callable[[list[str] | None], argparse.Namespace] = parse_args,
) -> int:
    """Run the deployment test; return the process exit code.

    :param argv: arguments (default: sys.argv)
    :param run_type: what the run does (``Run``: the happy path; the chaos run subclasses it)
    :param parse: the command-line parser of ``run_type``
    """
    run = run_type(parse(argv))
    started = time.monotonic()
    failed = False
    findings: list[str] = []
    # A CI timeout or `kill` sends SIGTERM: turn it into an exception so teardown still runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run.execute()
    except KeyboardInterrupt:
        failed = True
        step("interrupted")
    except Exception as exc:  # noqa: BLE001 - every failure is reported, then torn down
        failed = True
        findings = run.report_failure(exc)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.teardown()
    for label, seconds in run.timings.items():
        print(f"  {seconds:6.1f}s  {label}")
    # Kept after a pass too (a few MB): the component and task logs are the evidence of the run.
    step(f"logs in {run.run_dir}: components in logs/, tasks in airflow_home/logs/")
    if any(ARTIFACTS.glob("*.png")):
        step(f"screenshots in {ARTIFACTS}")
    total = time.monotonic() - started
    if run.args.break_:
        # A deliberately broken provider must make the run fail, and the report must quote the
        # breakage: passing, or failing for another reason, would be the bug.
        evidence = BREAKAGES[run.args.break_].evidence
        caught = failed and any(evidence in finding for finding in findings)
        verdict = "caught and explained" if caught else "NOT caught or not explained"
        step(f"--break {run.args.break_}: {verdict} (looked for {evidence!r}) in {total:.0f}s")
        return 0 if caught else 1
    step(f"{'FAILED' if failed else 'PASSED'} in {total:.0f}s")
    return 1 if failed else 0


def _raise_interrupt(signum: int, frame: object) -> None:
    """Turn a signal into KeyboardInterrupt so that ``finally`` blocks run."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
