"""`make chaos`: kill Airflow components and take d6 down mid-run; check the sandbox's ground truth.

One production-shape deployment (as `make e2e` builds it) serves every scenario in turn:

1. export     the Celery worker SIGKILLed while D6ToStorageOperator streams a large school
2. reconcile  the worker SIGKILLed during ``apply`` of a reconciliation with hundreds of changes
3. note       the worker SIGKILLed after d6 accepted a Create Note, before the task recorded it
4. triggerer  the triggerer stopped (SIGTERM, then SIGKILL) while onboarding sensors are deferred
5. restart    the scheduler and the api-server SIGKILLed and restarted during the nightly runs
6. outage     d6 answering 503 with Retry-After for a minute in the middle of the nightly runs

Each is judged by what the sandbox holds (records, pairs, notes) and received (its request log),
never by what Airflow reports alone. A table of the outcomes ends the run.

Usage: python e2e/chaos.py [--only export,note,...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e import harness, scenario
from e2e.airflow_api import AirflowAPI
from e2e.harness import E2EFailure, step, wait_until
from e2e.run import PROJECT, Run, main
from e2e.sandbox import start_sandbox

CHAOS_DAGS = PROJECT / "e2e" / "chaos_dags"
EXPORT_DAG = "d6_chaos_export"
NOTE_DAG = "d6_chaos_note"
NOTES_PATH = "/api/v2/finplus/debtmanagement/debtornotes/notes"
V1_STATE_PATH = "/api/v1/settings/clients/"
# The seeded layout of schools 1000-1007 is what dags/d6_desired_states.yaml describes; the
# schools after them are emptied at the start and lent to one scenario at a time.
SEEDED_SCHOOLS = range(1000, 1008)
SCHOOLS = 160
LEARNERS_PER_SCHOOL = 2500
# Short on purpose: how long a killed worker's task goes unnoticed, the wait between tries, and
# how soon a triggerer that stopped heartbeating loses its triggers. Production values are in
# the README ("Running in a real Airflow deployment").
HEARTBEAT_TIMEOUT_S = 20
RETRY_DELAY_S = 10
TRIGGERER_HEALTH_S = 15
OUTAGE_S = 60
SCENARIOS = ("export", "note", "restart", "outage", "triggerer", "reconcile")


@dataclass
class Outcome:
    """One scenario's line in the final table."""

    scenario: str
    killed: str
    outcome: str = "FAILED"
    expected: str = ""
    found: str = ""
    duplicates: str = ""
    recovered_s: float | None = None

    @property
    def passed(self) -> bool:
        """Say whether the scenario held."""
        return self.outcome.startswith("passed")


def format_table(outcomes: list[Outcome]) -> str:
    """Render the outcomes as a fixed-width table (long cells wrap onto further lines).

    :param outcomes: in the order the scenarios ran
    """
    header = ("scenario", "killed, and when", "outcome", "expected", "found", "dups", "recover")
    widths = (10, 44, 22, 22, 22, 5, 8)
    rows = [header]
    for o in outcomes:
        recovered = "-" if o.recovered_s is None else f"{o.recovered_s:.0f}s"
        rows.append((o.scenario, o.killed, o.outcome, o.expected, o.found, o.duplicates, recovered))
    lines = []
    for index, row in enumerate(rows):
        cells = [_wrap(str(cell), width) for cell, width in zip(row, widths, strict=True)]
        for depth in range(max(len(c) for c in cells)):
            parts = [
                (c[depth] if depth < len(c) else "").ljust(w)
                for c, w in zip(cells, widths, strict=True)
            ]
            lines.append(" | ".join(parts).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * w for w in widths))
    failures = [f"  {o.scenario}: {o.outcome}" for o in outcomes if not o.passed]
    return "\n".join(lines + (["", *failures] if failures else []))


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    return lines


def duplicate_writes(entries: list[dict[str, Any]]) -> tuple[dict[tuple[int, int], int], int]:
    """Count, from the sandbox's request log, the state writes that reached each pair.

    Returns the successful writes per ``(school_id, api_type_id)`` and how many writes of any
    outcome reached a pair after it was first written successfully (each is a write the
    provider should not have sent: the pair was already in its desired state).

    :param entries: ``GET /_sandbox/requests``, oldest first
    """
    written: Counter[tuple[int, int]] = Counter()
    again = 0
    for entry in entries:
        if entry.get("method") != "PATCH" or entry.get("fault"):
            continue
        path = str(entry.get("path", ""))
        body = entry.get("body") or {}
        if path.startswith(V1_STATE_PATH):
            school = path[len(V1_STATE_PATH) :].strip("/")
        elif path == "/api/v2/settings/clientintegrations" and entry.get("status") != 404:
            school = str(body.get("school_id", ""))
        else:
            continue
        if not school.isdigit() or "api_type_id" not in body:
            continue
        key = (int(school), int(body["api_type_id"]))
        if written[key]:
            again += 1
        status = entry.get("status")
        if isinstance(status, int) and 200 <= status < 300:
            written[key] += 1
    return dict(written), again


class ChaosRun(Run):
    """The deployment test with failures injected, one scenario after another."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.outcomes: list[Outcome] = []
        self.started_at = time.monotonic()
        # What the running scenario killed last, for its line in the table should it fail.
        self.last_kill = ""

    # --- the deployment ---------------------------------------------------------------------

    def dags_folder(self) -> Path:
        """Return a DAG folder holding the example DAGs and the chaos DAGs, deployed as copies."""
        folder = self.desired_dir
        folder.mkdir(exist_ok=True)
        for source in [*sorted((PROJECT / "dags").iterdir()), *sorted(CHAOS_DAGS.glob("*.py"))]:
            if source.is_file() and not source.name.startswith((".", "_")):
                shutil.copy2(source, folder / source.name)
        return folder

    @property
    def desired_dir(self) -> Path:
        """Return the DAG folder, which also holds the big reconciliation's desired states."""
        return self.run_dir / "dags"

    @property
    def export_dir(self) -> Path:
        """Return where the chaos export writes."""
        return self.run_dir / "exports"

    def extra_env(self) -> dict[str, str]:
        """Return the short timeouts and retry delay of the test (see the constants)."""
        return {
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_S),
            "D6_RETRY_DELAY_SECONDS": str(RETRY_DELAY_S),
        }

    # --- the run ----------------------------------------------------------------------------

    def execute(self) -> None:
        """Start everything once, then run the chosen scenarios; fail if any did not hold."""
        harness.check_postgres()
        harness.check_redis()
        self.sandbox = self.timed(
            "start the d6 sandbox",
            start_sandbox,
            self.others,
            schools=SCHOOLS,
            learners_per_school=LEARNERS_PER_SCHOOL,
        )
        self.timed("start Airflow", self.start_airflow)
        assert self.deployment is not None
        api = self.deployment.api()
        self.timed("create and test d6_default", scenario.create_connection, api, self.sandbox)
        self.timed("lend out the schools after 1007", self.empty_extra_schools)
        dag_ids = (EXPORT_DAG, NOTE_DAG, scenario.ONBOARDING)
        self.timed("parse and unpause the DAGs", scenario.wait_for_dags, api, dag_ids)
        scenario.wait_for_dags(api, (scenario.FINANCE_EXPORT, scenario.RECONCILIATION))
        # wait_for_dags unpaused the nightly DAGs too: pause them until the scenario that needs
        # their scheduled runs.
        for dag_id in (scenario.FINANCE_EXPORT, scenario.RECONCILIATION):
            api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        chosen = self.args.only or list(SCENARIOS)
        scenarios: dict[str, Callable[[AirflowAPI], Outcome]] = {
            "export": self.worker_killed_mid_export,
            "note": self.worker_killed_mid_note,
            "restart": self.scheduler_and_api_server_restarted,
            "outage": self.d6_down_for_a_minute,
            "triggerer": self.triggerer_restarted,
            "reconcile": self.worker_killed_mid_reconciliation,
        }
        for name in SCENARIOS:
            if name not in chosen:
                continue
            api = self.deployment.api()
            label = f"scenario {name}"
            self.last_kill = ""
            step(f"=== {label}")
            started = time.monotonic()
            try:
                outcome = scenarios[name](api)
            except Exception as exc:  # noqa: BLE001 - recorded, then the next scenario runs
                outcome = Outcome(name, self.last_kill, f"FAILED: {exc}"[:300])
                step(f"{label} FAILED: {exc}")
                self.recover_after_failure()
            self.timings[label] = time.monotonic() - started
            self.outcomes.append(outcome)
            step(f"{label}: {outcome.outcome}")
        failed = [o.scenario for o in self.outcomes if not o.passed]
        if failed:
            raise E2EFailure(f"chaos scenarios that did not hold: {', '.join(failed)}")

    def recover_after_failure(self) -> None:
        """Leave the deployment as the next scenario expects it: no faults, every component up."""
        assert self.sandbox is not None and self.deployment is not None
        try:
            self.sandbox.clear_faults()
            self.sandbox.configure(latency_ms=0)
            running = {p.name for p in self.deployment.processes.processes}  # type: ignore[union-attr]
            for name in ("api-server", "scheduler", "triggerer", "celery-worker"):
                if name not in running:
                    self.deployment.start_component(name)
            self.deployment.wait_healthy(timeout=180)
            # A run the failed scenario left going would write while the next scenario counts.
            api = self.deployment.api()
            for dag_id, run_id in self.tracker.runs:
                if api.get_run(dag_id, run_id)["state"] not in ("success", "failed"):
                    api.request(
                        "PATCH",
                        f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}",
                        json={"state": "failed"},
                    )
                    step(f"marked {dag_id} run {run_id} failed")
        except Exception as exc:  # noqa: BLE001 - the next scenario will say what is broken
            step(f"warning: could not restore the deployment: {exc}")

    def teardown(self) -> None:
        """Print the table, then stop everything."""
        if self.outcomes:
            print("\n" + format_table(self.outcomes), flush=True)
            passed = sum(o.passed for o in self.outcomes)
            print(
                f"\n{passed} of {len(self.outcomes)} scenarios held; "
                f"{time.monotonic() - self.started_at:.0f}s in all\n",
                flush=True,
            )
        super().teardown()

    # --- helpers ----------------------------------------------------------------------------

    def empty_extra_schools(self) -> None:
        """Withdraw every authorisation of the schools after 1007 (scenarios lend them out)."""
        assert self.sandbox is not None
        for record in self.sandbox.data("client_integrations"):
            if int(record["school_id"]) not in SEEDED_SCHOOLS:
                self.sandbox.deauthorise(int(record["school_id"]), int(record["api_type_id"]))
        step(f"schools {SCHOOLS - len(SEEDED_SCHOOLS)} after 1007 list no integration now")

    def kill_worker(self, when: str) -> float:
        """SIGKILL the Celery worker's process group, start a new worker; return the kill time.

        :param when: what was happening, for the table
        """
        assert self.deployment is not None
        self.last_kill = f"worker SIGKILL {when}"
        self.deployment.stop_component("celery-worker", signal.SIGKILL)
        killed_at = time.monotonic()
        self.deployment.start_component("celery-worker")
        self.deployment.wait_worker_ready(timeout=180)
        return killed_at

    def wait_state(
        self, api: AirflowAPI, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...]
    ) -> dict[str, Any]:
        """Wait until a task instance of a run is in one of ``states``; return it.

        :param api: logged-in REST client
        :param dag_id: the DAG
        :param run_id: the run
        :param task_id: the task
        :param states: e.g. ``("running",)``
        """

        def probe() -> dict[str, Any] | None:
            if api.get_run(dag_id, run_id)["state"] == "failed":
                raise E2EFailure(f"{dag_id} run {run_id} failed while waiting for {task_id}")
            return next(
                (
                    ti
                    for ti in api.task_instances(dag_id, run_id)
                    if ti["task_id"] == task_id and ti["state"] in states
                ),
                None,
            )

        return wait_until(f"{dag_id}.{task_id} to be {'/'.join(states)}", probe, timeout=300)

    def task_tries(self, api: AirflowAPI, dag_id: str, run_id: str, task_id: str) -> int:
        """Return the try number a task instance ended with (2 or more: it was retried)."""
        tis = [ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
        return max(int(ti["try_number"]) for ti in tis)

    # --- 1. worker killed mid-export --------------------------------------------------------

    def worker_killed_mid_export(self, api: AirflowAPI) -> Outcome:
        """SIGKILL the worker while the export streams; the retry's file holds every learner once."""
        assert self.sandbox is not None
        school_id = 1000
        target = self.export_dir / "learners-1000.jsonl"
        expected = {int(r["learner_id"]) for r in self.sandbox.school_data("learners", school_id)}
        # Slow d6 down so that the export streams for several seconds: the kill lands mid-way.
        self.sandbox.configure(latency_ms=150)
        self.sandbox.clear_requests()
        run_id = self.tracker.add(
            EXPORT_DAG, api.trigger(EXPORT_DAG, {"school_id": school_id, "path": str(target)})
        )

        def streaming() -> int | None:
            pages = sum(1 for e in self.sandbox.requests_log() if e["path"].endswith("/learners"))
            partial = list(target.parent.glob(f"{target.name}.tmp-*"))
            return pages if pages >= 8 and partial else None

        pages = wait_until("the export to be streaming", streaming, timeout=300, interval=0.3)
        partial = [p.name for p in target.parent.glob(f"{target.name}.tmp-*")]
        killed_at = self.kill_worker(f"after {pages} of {len(expected) // 50 + 1} pages")
        if target.exists():
            raise E2EFailure(f"{target} exists before the export finished")
        self.sandbox.configure(latency_ms=0)
        scenario.wait_for_run(api, EXPORT_DAG, run_id, timeout=600)
        recovered = time.monotonic() - killed_at
        tries = self.task_tries(api, EXPORT_DAG, run_id, "export_learners")
        ids = [int(json.loads(line)["learner_id"]) for line in target.read_text().splitlines()]
        duplicates = len(ids) - len(set(ids))
        leftovers = sorted(p.name for p in target.parent.iterdir() if p.name != target.name)
        step(
            f"killed while {partial} was being written; try {tries} wrote {len(ids)} records; "
            f"files left beside it: {leftovers}"
        )
        problems = []
        if tries < 2:
            problems.append(f"the task ended in try {tries}: the kill did not interrupt it")
        if set(ids) != expected or duplicates:
            problems.append(
                f"{len(expected - set(ids))} learners missing, {duplicates} duplicated, "
                f"{len(set(ids) - expected)} unknown"
            )
        if leftovers:
            problems.append(f"left beside the file: {leftovers}")
        return Outcome(
            "export",
            self.last_kill,
            f"FAILED: {'; '.join(problems)}" if problems else f"passed (try {tries})",
            f"{len(expected)} records",
            f"{len(ids)} records, {len(leftovers)} temp",
            str(duplicates),
            recovered,
        )

    # --- 3. worker killed mid-note ----------------------------------------------------------

    def worker_killed_mid_note(self, api: AirflowAPI) -> Outcome:
        """SIGKILL the worker after d6 created the note but before it answered; no second note."""
        assert self.sandbox is not None
        school_id = 1000
        person = self.sandbox.school_data("accountable_persons", school_id)[0]
        person_id = int(person["accountable_person_id"])
        communication = int(self.sandbox.data("communication_types")[0]["id"])
        text = f"Chaos run {self.run_dir.name}: phoned about the overdue account"
        conf = {
            "school_id": school_id,
            "accountable_person_id": person_id,
            "communication_type_id": communication,
            "date": date.today().isoformat(),
            "note": text,
        }

        def ours() -> list[dict[str, Any]]:
            return [
                n
                for n in self.sandbox.school_data("notes", school_id)
                if n.get("note") == text and n.get("status") != "Deleted"
            ]

        self.sandbox.clear_requests()
        # d6 stores the note, then holds its answer: the task is still waiting when it is killed.
        self.sandbox.set_faults(
            {
                "script": [{"kind": "slow_after", "method": "POST", "path": NOTES_PATH}],
                "slow_seconds": 120,
            }
        )
        run_id = self.tracker.add(NOTE_DAG, api.trigger(NOTE_DAG, conf))
        wait_until("d6 to store the note", ours, timeout=300, interval=0.3)
        killed_at = self.kill_worker("after d6 stored the note, before it answered")
        self.sandbox.clear_faults()
        scenario.wait_for_run(api, NOTE_DAG, run_id, timeout=600)
        recovered = time.monotonic() - killed_at
        tries = self.task_tries(api, NOTE_DAG, run_id, "create_note")
        notes = ours()
        posts = [
            e
            for e in self.sandbox.requests_log()
            if e["method"] == "POST" and e["path"] == NOTES_PATH
        ]
        problems = []
        if tries < 2:
            problems.append(f"the task ended in try {tries}: the kill did not interrupt it")
        if len(notes) != 1:
            problems.append(f"{len(notes)} notes with the text exist")
        if len(posts) != 1:
            problems.append(f"d6 received {len(posts)} Create Note requests")
        return Outcome(
            "note",
            self.last_kill,
            f"FAILED: {'; '.join(problems)}" if problems else f"passed (try {tries})",
            "1 note, 1 Create Note",
            f"{len(notes)} note, {len(posts)} Create Note",
            str(max(0, len(notes) - 1)),
            recovered,
        )

    # --- 2. worker killed mid-reconciliation ------------------------------------------------

    def worker_killed_mid_reconciliation(self, api: AirflowAPI) -> Outcome:
        """SIGKILL the worker during apply; every pair ends as desired, none written twice."""
        assert self.sandbox is not None
        pairs = [
            (school, api_type)
            for school in range(SEEDED_SCHOOLS.stop, 1000 + SCHOOLS)
            for api_type in scenario.API_TYPES
        ]
        for school, api_type in pairs:
            self.sandbox.authorise(school, api_type)
        desired = self.desired_dir / "chaos_desired_states.json"
        desired.write_text(
            json.dumps(
                {
                    "desired_states": [
                        {"school_id": s, "api_type_id": t, "state": True} for s, t in pairs
                    ]
                }
            )
        )
        self.sandbox.configure(latency_ms=60)
        self.sandbox.clear_requests()
        run_id = self.tracker.add(
            scenario.RECONCILIATION,
            api.trigger(scenario.RECONCILIATION, {"desired_states_path": desired.name}),
        )
        api.unpause(scenario.RECONCILIATION)

        def applying() -> int | None:
            written, _ = duplicate_writes(self.sandbox.requests_log())
            return len(written) if len(written) >= len(pairs) // 4 else None

        done = wait_until("apply to be under way", applying, timeout=400, interval=0.5)
        killed_at = self.kill_worker(f"in apply, {done} of {len(pairs)} pairs written")
        self.sandbox.configure(latency_ms=0)
        scenario.wait_for_run(api, scenario.RECONCILIATION, run_id, timeout=600)
        api.request("PATCH", f"/dags/{scenario.RECONCILIATION}", json={"is_paused": True})
        recovered = time.monotonic() - killed_at
        tries = self.task_tries(api, scenario.RECONCILIATION, run_id, "apply")
        written, again = duplicate_writes(self.sandbox.requests_log())
        states = {
            (int(r["school_id"]), int(r["api_type_id"])): r
            for r in self.sandbox.data("client_integrations")
        }
        from airflow_provider_d6.hooks.client_integration_state import is_activated

        wrong = [p for p in pairs if not is_activated(states.get(p))]
        unwritten = [p for p in pairs if written.get(p, 0) == 0]
        problems = []
        if tries < 2:
            problems.append(f"apply ended in try {tries}: the kill did not interrupt it")
        if wrong:
            problems.append(f"{len(wrong)} pairs not activated, e.g. {wrong[:3]}")
        if again:
            problems.append(f"{again} writes to pairs already in their desired state")
        if unwritten:
            problems.append(f"{len(unwritten)} pairs activated without a write seen")
        # Give the schools back, as the other scenarios expect them.
        for school, api_type in pairs:
            self.sandbox.deauthorise(school, api_type)
        return Outcome(
            "reconcile",
            self.last_kill,
            f"FAILED: {'; '.join(problems)}" if problems else f"passed (try {tries})",
            f"{len(pairs)} pairs activated",
            f"{len(pairs) - len(wrong)} activated",
            str(again),
            recovered,
        )

    # --- 4. triggerer restarted -------------------------------------------------------------

    def triggerer_restarted(self, api: AirflowAPI) -> Outcome:
        """Stop the triggerer twice while sensors wait; they resume, fire and keep their deadline."""
        assert self.sandbox is not None and self.deployment is not None
        pairs = [
            (school, api_type)
            for school in range(SEEDED_SCHOOLS.stop, SEEDED_SCHOOLS.stop + 4)
            for api_type in scenario.API_TYPES
        ]
        self.sandbox.clear_requests()
        runs: dict[tuple[int, int], str] = {}
        for school, api_type in pairs:
            conf = {
                "school_id": school,
                "api_type_id": api_type,
                "wait_for_authorisation_minutes": 30,
            }
            runs[(school, api_type)] = self.tracker.add(
                scenario.ONBOARDING, api.trigger(scenario.ONBOARDING, conf)
            )
        waiting = self.wait_deferred(api, runs, set(runs))
        step(
            f"{len(runs)} sensors deferred; (deadline, trigger_timeout, triggerer) {waiting[pairs[0]]}"
        )
        authorised: set[tuple[int, int]] = set()
        recover = 0.0
        for sig, batch in ((signal.SIGTERM, pairs[:2]), (signal.SIGKILL, pairs[2:4])):
            self.last_kill = (
                f"triggerer {sig.name} with {len(runs) - len(authorised)} sensors deferred"
            )
            old_triggerers = frozenset(value[2] for value in waiting.values())
            self.deployment.stop_component("triggerer", sig)
            stopped_at = time.monotonic()
            for pair in batch:
                self.sandbox.authorise(*pair)
                authorised.add(pair)
            time.sleep(3)  # authorised while no triggerer runs
            self.deployment.start_component("triggerer")
            for pair in batch:
                scenario.wait_for_run(api, scenario.ONBOARDING, runs[pair], timeout=400)
            recover = max(recover, time.monotonic() - stopped_at)
            still = {p for p in runs if p not in authorised}
            after = self.wait_deferred(api, runs, still, not_on=old_triggerers)
            moved = {
                p: (waiting[p][:2], after[p][:2]) for p in still if after[p][:2] != waiting[p][:2]
            }
            if moved:
                raise E2EFailure(f"after {sig.name} these sensors' deadlines moved: {moved}")
            waiting = after
            step(
                f"after {sig.name}: {len(batch)} fired, {len(still)} still wait on triggerer "
                f"{sorted({v[2] for v in after.values()})} with their deadlines"
            )
        # Let the rest finish too, so that nothing is left waiting.
        for pair in runs:
            if pair not in authorised:
                self.sandbox.authorise(*pair)
        for run_id in runs.values():
            scenario.wait_for_run(api, scenario.ONBOARDING, run_id, timeout=400)
        activated = sum(
            1 for pair in runs if scenario.is_activated(self.sandbox.integration(*pair))
        )
        # Each pair is activated once, by its own run, however often the sensor was resumed.
        written, again = duplicate_writes(self.sandbox.requests_log())
        for pair in runs:
            self.sandbox.deauthorise(*pair)
        problems = []
        if activated != len(runs):
            problems.append(f"{len(runs) - activated} pairs not activated")
        if again or any(written.get(pair, 0) != 1 for pair in runs):
            problems.append(f"activations per pair {written}, {again} after the first")
        return Outcome(
            "triggerer",
            "triggerer SIGTERM, then SIGKILL, with 8 sensors deferred; 2 schools authorised "
            "while each was down",
            f"FAILED: {'; '.join(problems)}" if problems else "passed",
            f"{len(runs)} runs, deadlines kept",
            f"{activated} activated, 0 moved",
            str(again),
            recover,
        )

    def wait_deferred(
        self,
        api: AirflowAPI,
        runs: dict[tuple[int, int], str],
        pairs: set[tuple[int, int]],
        not_on: frozenset[int] = frozenset(),
    ) -> dict[tuple[int, int], tuple[float, float | None, int]]:
        """Wait until the sensors of ``pairs`` are deferred and taken by a triggerer.

        Each pair maps to the trigger's own ``deadline``, Airflow's ``trigger_timeout`` and the
        id of the triggerer job running it.

        :param api: logged-in REST client
        :param runs: onboarding run id per pair
        :param pairs: the pairs whose sensors must be deferred
        :param not_on: triggerer job ids that no longer run (their triggers must have moved)
        """
        from cryptography.fernet import Fernet

        fernet = Fernet(json.loads((self.run_dir / "secrets.json").read_text())["fernet_key"])
        run_pairs = {runs[pair]: pair for pair in pairs}

        def probe() -> dict[tuple[int, int], tuple[float, float | None, int]] | None:
            assert self.database is not None
            rows = harness.deferred_triggers(
                self.database, scenario.ONBOARDING, "wait_for_authorisation"
            )
            if not set(run_pairs) <= set(rows):
                return None
            owners = {rows[run_id]["triggerer_id"] for run_id in run_pairs}
            if None in owners or owners & not_on:
                return None
            return {
                pair: (
                    trigger_deadline(stored_kwargs(rows[run_id]["kwargs"], fernet)),
                    rows[run_id]["trigger_timeout"],
                    rows[run_id]["triggerer_id"],
                )
                for run_id, pair in run_pairs.items()
            }

        return wait_until(f"{len(pairs)} sensors to be deferred", probe, timeout=400, interval=2)

    # --- 5. scheduler and api-server restarted ----------------------------------------------

    def scheduler_and_api_server_restarted(self, api: AirflowAPI) -> Outcome:
        """Kill and restart the scheduler and api-server mid nightly runs; the runs complete."""
        assert self.deployment is not None and self.sandbox is not None
        self.sandbox.configure(latency_ms=40)
        runs = self.start_nightly_runs(api, scheduled=True)
        self.wait_state(
            api,
            scenario.FINANCE_EXPORT,
            runs[scenario.FINANCE_EXPORT],
            "export_learners",
            ("running", "success"),
        )
        self.last_kill = "scheduler + api-server SIGKILL while export_* ran"
        self.deployment.stop_component("scheduler", signal.SIGKILL)
        self.deployment.stop_component("api-server", signal.SIGKILL)
        killed_at = time.monotonic()
        self.deployment.start_component("api-server")
        self.deployment.start_component("scheduler")
        self.deployment.wait_healthy(timeout=240)
        api = self.deployment.api()
        self.sandbox.configure(latency_ms=0)
        return self.finish_nightly(api, runs, "restart", killed_at)

    # --- 6. d6 down for a minute ------------------------------------------------------------

    def d6_down_for_a_minute(self, api: AirflowAPI) -> Outcome:
        """503 with Retry-After for a minute mid nightly runs; retries finish them, nothing lost."""
        assert self.sandbox is not None
        # Two pairs the sample desired states activate are reset, so the run has writes to make.
        for school, api_type in ((1000, 9), (1001, 8)):
            self.sandbox.deauthorise(school, api_type)
            self.sandbox.authorise(school, api_type)
        self.sandbox.configure(latency_ms=40)
        runs = self.start_nightly_runs(api, scheduled=False)
        self.wait_state(
            api,
            scenario.FINANCE_EXPORT,
            runs[scenario.FINANCE_EXPORT],
            "export_learners",
            ("running", "success"),
        )
        self.last_kill = f"d6 503 + Retry-After for {OUTAGE_S}s while export_* ran"
        self.sandbox.set_faults({"rate": 1.0, "kinds": ["503"], "retry_after": "5"})
        down_at = time.monotonic()
        step(f"d6 answers 503 to everything for {OUTAGE_S}s")
        time.sleep(OUTAGE_S)
        self.sandbox.clear_faults()
        self.sandbox.configure(latency_ms=0)
        refused = sum(1 for e in self.sandbox.requests_log() if e.get("fault") == "503")
        step(f"d6 is back; it refused {refused} requests while down")
        return self.finish_nightly(api, runs, "outage", down_at)

    def start_nightly_runs(self, api: AirflowAPI, scheduled: bool) -> dict[str, str]:
        """Start the finance export and the reconciliation: by unpausing or by triggering.

        :param api: logged-in REST client
        :param scheduled: unpause, so the scheduler creates the runs of the last interval
        """
        assert self.sandbox is not None
        self.sandbox.clear_requests()
        runs = {}
        for dag_id in (scenario.FINANCE_EXPORT, scenario.RECONCILIATION):
            if scheduled:
                api.unpause(dag_id)
                run = wait_until(
                    f"the scheduled run of {dag_id}",
                    lambda d=dag_id: next(iter(api.list_runs(d)), None),
                    timeout=120,
                    interval=2,
                )
                runs[dag_id] = self.tracker.add(dag_id, run["dag_run_id"])
            else:
                runs[dag_id] = self.tracker.add(dag_id, api.trigger(dag_id))
                # Paused between scenarios; the last interval's scheduled run already ran.
                api.unpause(dag_id)
        return runs

    def finish_nightly(
        self, api: AirflowAPI, runs: dict[str, str], name: str, since: float
    ) -> Outcome:
        """Wait for the nightly runs; check every file and pair against the sandbox.

        :param api: logged-in REST client
        :param runs: run id per DAG
        :param name: the scenario
        :param since: when the failure began
        """
        assert self.sandbox is not None
        for dag_id, run_id in runs.items():
            scenario.wait_for_run(api, dag_id, run_id, timeout=600)
        recovered = time.monotonic() - since
        for dag_id in runs:
            api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        retried = sorted(
            {
                ti["task_id"]
                for dag_id, run_id in runs.items()
                for ti in api.task_instances(dag_id, run_id)
                if int(ti["try_number"] or 0) > 1
            }
        )
        # The export: each planned school's learners file holds the school's learners once.
        export_run = runs[scenario.FINANCE_EXPORT]
        files = api.request(
            "GET",
            f"/dags/{scenario.FINANCE_EXPORT}/dagRuns/{export_run}/taskInstances/summary"
            "/xcomEntries/return_value",
            params={"deserialize": "true", "stringify": "false"},
        )["value"]["files"]
        expected = found = duplicates = 0
        problems = []
        for path in files:
            if not path.endswith("/learners.jsonl"):
                continue
            school = int(Path(path).parent.name)
            truth = self.sandbox.school_data("learners", school)
            known = {int(r["learner_id"]) for r in truth}
            # d6 lists current learners and those who left owing money: every current one must
            # be in the file, and nothing d6 does not hold.
            current = {int(r["learner_id"]) for r in truth if r.get("status") == "Current"}
            ids = [
                int(json.loads(line)["learner_id"])
                for line in Path(path.removeprefix("file://")).read_text().splitlines()
            ]
            expected += len(current)
            found += len(set(ids) & current)
            duplicates += len(ids) - len(set(ids))
            if not current <= set(ids) or not set(ids) <= known:
                problems.append(f"school {school}'s learners differ from d6's")
            leftovers = [p.name for p in Path(path.removeprefix("file://")).parent.glob("*.tmp-*")]
            if leftovers:
                problems.append(f"temporary files left: {leftovers}")
        if len(files) != 3 * sum(1 for p in files if p.endswith("/learners.jsonl")):
            problems.append(f"the export wrote {len(files)} files, not 3 per school")
        # The reconciliation: the sample's pairs as desired, none written after it got there.
        desired = {
            (1000, 8): True,
            (1000, 9): True,
            (1001, 8): True,
            (1002, 9): False,
            (1006, 8): True,
        }
        states = {
            (int(r["school_id"]), int(r["api_type_id"])): r
            for r in self.sandbox.data("client_integrations")
        }
        wrong = [p for p, want in desired.items() if scenario.is_activated(states.get(p)) != want]
        _, again = duplicate_writes(self.sandbox.requests_log())
        if wrong:
            problems.append(f"pairs not in their desired state: {wrong}")
        if again:
            problems.append(f"{again} writes to pairs already in their desired state")
        return Outcome(
            name,
            self.last_kill,
            f"FAILED: {'; '.join(problems)}"
            if problems
            else f"passed ({len(retried)} tasks retried)",
            f"{expected} records, {len(desired)} pairs",
            f"{found} records, {len(desired) - len(wrong)} pairs",
            str(duplicates + again),
            recovered,
        )


def stored_kwargs(text: str, fernet: Any) -> Any:
    """Return a trigger's kwargs as the database holds them: JSON, or Fernet-encrypted JSON.

    :param text: the ``trigger.kwargs`` column
    :param fernet: a ``cryptography.fernet.Fernet`` with the deployment's key
    """
    # Airflow reads both forms too (some migration paths store the kwargs unencrypted).
    if text.startswith("{"):
        return json.loads(text)
    return json.loads(fernet.decrypt(text.encode()).decode())


def trigger_deadline(kwargs: Any) -> float:
    """Return the ``deadline`` in a trigger's decrypted, serialized kwargs.

    :param kwargs: the JSON Airflow stores (``{"__var": {...}, "__type": "dict"}`` or plain)
    """
    todo = [kwargs]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            found = value.get("deadline")
            if isinstance(found, (int, float)) and not isinstance(found, bool):
                return float(found)
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    raise E2EFailure(f"the trigger's kwargs carry no deadline: {str(kwargs)[:300]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments (default: sys.argv)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help=f"comma-separated scenarios to run (default: all of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--keep", action="store_true", help="wait for Enter before tearing down")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only or [] if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    # What the deployment test's Run reads: no breakage, no browser.
    args.break_ = None
    args.skip_browser = True
    args.dags_folder = str(PROJECT / "dags")
    return args


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(run_type=ChaosRun, parse=parse_args))
