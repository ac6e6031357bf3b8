"""What the deployment test proves about the provider, step by step, through the REST API."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_d6.get_provider_info import get_provider_info
from airflow_provider_d6.hooks.client_integration_state import is_activated
from e2e.airflow_api import AirflowAPI, APIError
from e2e.harness import E2EFailure, step, wait_until
from e2e.sandbox import Sandbox
from e2e.worker_identity import DEFAULT_NAME as WORKER_HOSTNAME

ONBOARDING = "d6_onboarding"
FINANCE_EXPORT = "d6_finance_export"
RECONCILIATION = "d6_nightly_reconciliation"
SCHOOL_SYNC = "d6_school_sync"
DAG_IDS = (ONBOARDING, FINANCE_EXPORT, RECONCILIATION, SCHOOL_SYNC)
PSEUDONYM_KEY_CONN = "d6_pseudonym_key"
API_TYPES = {8: "Admin+ API", 9: "Curriculum+ API"}
TRIGGER_CLASS = "airflow_provider_d6.triggers.client_integrations.ClientIntegrationTrigger"


@dataclass
class Tracker:
    """The DAG runs the test started, so a failure report can fetch their task logs."""

    runs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, dag_id: str, run_id: str) -> str:
        """Record a run and return its id.

        :param dag_id: the DAG
        :param run_id: the run
        """
        self.runs.append((dag_id, run_id))
        return run_id


def connection_body(
    sandbox: Sandbox, connection_id: str, password: str | None = None
) -> dict[str, Any]:
    """Return the REST body of a d6 connection to the sandbox.

    :param sandbox: the running sandbox
    :param connection_id: the id to store it under
    :param password: overrides the sandbox's password (to test a wrong one)
    """
    return {
        "connection_id": connection_id,
        "conn_type": "d6",
        "host": sandbox.base_url,
        "login": sandbox.username,
        "password": sandbox.password if password is None else password,
        "extra": json.dumps({"timeout": 30, "max_attempts": 3}),
    }


def check_connection_form(api: AirflowAPI) -> None:
    """Require the api-server to serve the d6 connection form: relabelled fields and the extras.

    Runs before any connection test: Airflow 3.1's api-server builds a type's form once, the
    first time it imports the type's hook, and only the form's own import can build it (3.2+
    reads the form from the provider info instead). On 3.1, testing a d6 connection before the
    form was first opened leaves the form plain until the api-server restarts.

    :param api: logged-in REST client
    """
    form = api.connection_form("d6")
    if form is None:
        raise E2EFailure("the api-server offers no d6 connection type to the connection form")
    host = (form.get("standard_fields") or {}).get("host") or {}
    extras = sorted(form.get("extra_fields") or {})
    step(f"connection form: host labelled {host.get('title')!r}, extra fields {extras}")
    (declared,) = (
        t for t in get_provider_info()["connection-types"] if t["connection-type"] == "d6"
    )
    expected = sorted(declared["conn-fields"])
    if host.get("title") != "Base URL" or extras != expected:
        raise E2EFailure(
            f"the d6 connection form is not the provider's: host {host}, extras {extras}",
            hint="api-server.log says why the hook's form could not be built",
        )


def create_connection(api: AirflowAPI, sandbox: Sandbox) -> None:
    """Store ``d6_default`` in the database; its test must pass and a wrong password's must fail.

    :param api: logged-in REST client
    :param sandbox: the running sandbox
    """
    api.put_connection(connection_body(sandbox, "d6_default"))
    stored = api.get_connection("d6_default")
    if stored["conn_type"] != "d6" or stored["host"] != sandbox.base_url:
        raise E2EFailure(f"d6_default was not stored as sent: {stored}")
    result = api.test_connection(connection_body(sandbox, "d6_default"))
    step(f"connection test of d6_default: status={result['status']} message={result['message']!r}")
    if result["status"] is not True:
        raise E2EFailure(
            f"the connection test of d6_default failed: {result['message']}",
            hint="D6Hook.test_connection runs inside the api-server; see api-server.log",
        )
    wrong_password = f"wrong-{secrets.token_hex(8)}"
    result = api.test_connection(connection_body(sandbox, "d6_wrong_password", wrong_password))
    message = str(result["message"])
    step(f"connection test with a wrong password: status={result['status']} message={message!r}")
    if result["status"] is not False:
        raise E2EFailure("a connection with a wrong password passed its test")
    if wrong_password in message:
        raise E2EFailure("the failed connection test echoed the password it was given")
    if not any(word in message.lower() for word in ("401", "auth", "credential", "password")):
        raise E2EFailure(f"the failed connection test does not say why: {message!r}")


def create_pseudonym_key(api: AirflowAPI) -> str:
    """Store ``d6_pseudonym_key`` (a random key) for d6_school_sync; return the key to scan for.

    :param api: logged-in REST client
    """
    key = secrets.token_hex(32)
    api.put_connection(
        {"connection_id": PSEUDONYM_KEY_CONN, "conn_type": "generic", "password": key}
    )
    step(f"stored {PSEUDONYM_KEY_CONN} (a fresh random pseudonym key)")
    return key


def test_saved_connection(api: AirflowAPI, connection_id: str) -> str:
    """Test a stored connection with its stored credentials, as the UI's Test button does.

    :param api: logged-in REST client
    :param connection_id: a connection saved through the UI
    """
    result = api.test_connection({"connection_id": connection_id, "conn_type": "d6"})
    if result["status"] is not True:
        raise E2EFailure(f"the connection saved through the UI fails its test: {result['message']}")
    return str(result["message"])


def wait_for_dags(api: AirflowAPI, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
    """Wait until the dag-processor has parsed every DAG; fail at once on an import error.

    :param api: logged-in REST client
    :param dag_ids: the DAGs the test needs
    :param timeout: seconds
    """

    def parsed() -> bool:
        errors = api.import_errors()
        if errors:
            first = errors[0]
            raise E2EFailure(
                f"the dag-processor could not import {first.get('filename')}",
                hint=str(first.get("stack_trace", ""))[-1500:],
            )
        return all(api.get_dag(dag_id) is not None for dag_id in dag_ids)

    wait_until(
        f"the dag-processor to parse {', '.join(dag_ids)}", parsed, timeout=timeout, interval=2
    )
    for dag_id in dag_ids:
        api.unpause(dag_id)


def pick_unauthorised_pair(sandbox: Sandbox) -> tuple[int, int, str]:
    """Return (school_id, api_type_id, school_name) of a pair the school has not authorised.

    :param sandbox: the running sandbox
    """
    authorised = {
        (int(r["school_id"]), int(r["api_type_id"])) for r in sandbox.data("client_integrations")
    }
    for school in sorted(sandbox.data("schools"), key=lambda s: int(s["school_id"])):
        for api_type_id in API_TYPES:
            if (int(school["school_id"]), api_type_id) not in authorised:
                return int(school["school_id"]), api_type_id, str(school["school_name"])
    raise E2EFailure("the sandbox has no school that has not authorised us; cannot test onboarding")


def pick_activated_pair(sandbox: Sandbox) -> tuple[int, int]:
    """Return (school_id, api_type_id) of a pair already authorised and activated.

    :param sandbox: the running sandbox
    """
    for record in sandbox.data("client_integrations"):
        if is_activated(record):
            return int(record["school_id"]), int(record["api_type_id"])
    raise E2EFailure("the sandbox has no activated client integration")


def wait_for_run(api: AirflowAPI, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
    """Wait until a run ends; return it when it succeeded, fail naming the failed tasks otherwise.

    :param api: logged-in REST client
    :param dag_id: the DAG
    :param run_id: the run
    :param timeout: seconds
    """

    def ended() -> dict[str, Any] | None:
        run = api.get_run(dag_id, run_id)
        return run if run["state"] in ("success", "failed") else None

    run = wait_until(f"{dag_id} run {run_id} to end", ended, timeout=timeout, interval=2)
    if run["state"] != "success":
        failed = [
            f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]
            for ti in api.task_instances(dag_id, run_id)
            if ti["state"] not in ("success", "skipped")
        ]
        raise E2EFailure(
            f"{dag_id} run {run_id} ended {run['state']}; tasks not successful: {failed}"
        )
    return run


def require_worker_ran(api: AirflowAPI, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Require every executed task instance of a run to carry the Celery worker's hostname.

    :param api: logged-in REST client
    :param dag_id: the DAG
    :param run_id: the run
    """
    tis = [ti for ti in api.task_instances(dag_id, run_id) if ti["state"] != "skipped"]
    elsewhere = [(ti["task_id"], ti["hostname"]) for ti in tis if ti["hostname"] != WORKER_HOSTNAME]
    if not tis or elsewhere:
        raise E2EFailure(
            f"{dag_id}: task instances not run by the Celery worker: {elsewhere or 'none ran'}"
        )
    return tis


def onboarding(
    api: AirflowAPI,
    sandbox: Sandbox,
    tracker: Tracker,
    deferral_seen: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """Run ``d6_onboarding`` for a school that has not authorised us, authorising it mid-wait.

    :param api: logged-in REST client
    :param sandbox: the running sandbox
    :param tracker: records the run for failure reports
    :param deferral_seen: ``(run_id, task_id)`` -> whether the scheduler has taken in the
        deferral; the school is authorised only then (see ``Deployment.scheduler_saw_deferral``)
    """
    school_id, api_type_id, school_name = pick_unauthorised_pair(sandbox)
    step(
        f"onboarding {school_name} (school {school_id}) for {API_TYPES[api_type_id]}: not authorised yet"
    )
    conf = {
        "school_id": school_id,
        "api_type_id": api_type_id,
        "wait_for_authorisation_minutes": 10,
    }
    run_id = tracker.add(ONBOARDING, api.trigger(ONBOARDING, conf))

    def deferred() -> dict[str, Any] | None:
        if api.get_run(ONBOARDING, run_id)["state"] == "failed":
            raise E2EFailure(f"{ONBOARDING} failed before its sensor deferred")
        tis = api.task_instances(ONBOARDING, run_id)
        return next((ti for ti in tis if ti["state"] == "deferred"), None)

    sensor = wait_until("the sensor to be deferred", deferred, timeout=240, interval=2)
    trigger = sensor.get("trigger") or {}
    step(f"{sensor['task_id']} is deferred; trigger {trigger.get('classpath')} in the triggerer")
    if trigger.get("classpath") != TRIGGER_CLASS:
        raise E2EFailure(
            f"the deferred task waits on {trigger.get('classpath')!r}, not {TRIGGER_CLASS}"
        )
    if deferral_seen is not None:
        task_id = sensor["task_id"]
        wait_until(
            "the scheduler to take in the deferral",
            lambda: deferral_seen(run_id, task_id) or None,
            timeout=120,
            interval=1,
        )
    if sandbox.integration(school_id, api_type_id) is not None:
        raise E2EFailure("the school reads authorised before the test authorised it")
    sandbox.authorise(school_id, api_type_id)
    step(f"authorised school {school_id} for API type {api_type_id} in the sandbox")
    wait_for_run(api, ONBOARDING, run_id, timeout=300)
    tis = require_worker_ran(api, ONBOARDING, run_id)
    record = sandbox.integration(school_id, api_type_id)
    if not is_activated(record):
        raise E2EFailure(f"the run succeeded but the sandbox reads the pair as {record}")
    logs = {
        ti["task_id"]: api.task_log(ONBOARDING, run_id, ti["task_id"], ti["try_number"])
        for ti in tis
    }
    # The summary reads "<school> (school N), <API type>: not authorised -> activated. ...".
    summary = [
        line
        for text in logs.values()
        for line in text.splitlines()
        if school_name in line and re.search(r"not authorised\s*(->|→)\s*activated", line)
    ]
    if not summary:
        raise E2EFailure(
            "no task log shows the onboarding summary (school name, 'not authorised -> activated')"
        )
    leaks = [task for task, text in logs.items() if sandbox.password in text]
    if leaks:
        raise E2EFailure(f"the sandbox password appears in the task logs of {leaks}")
    step(f"summary from the task log: {summary[-1][:300]}")
    return {
        "run_id": run_id,
        "school_id": school_id,
        "api_type_id": api_type_id,
        "tasks": len(tis),
        "summary": summary[-1],
    }


def school_sync_follows(api: AirflowAPI, facts: dict[str, Any], tracker: Tracker) -> str:
    """Require the onboarding's Asset event to start ``d6_school_sync`` for that school only.

    :param api: logged-in REST client
    :param facts: what :func:`onboarding` returned (the school and API type activated)
    :param tracker: records the run for failure reports
    """
    school_id, api_type_id = facts["school_id"], facts["api_type_id"]

    def triggered() -> dict[str, Any] | None:
        runs = [r for r in api.list_runs(SCHOOL_SYNC) if r.get("run_type") == "asset_triggered"]
        return runs[-1] if runs else None  # newest first: the first the event started

    run = wait_until(
        f"the activation event to start {SCHOOL_SYNC}", triggered, timeout=180, interval=2
    )
    run_id = tracker.add(SCHOOL_SYNC, run["dag_run_id"])
    step(f"{SCHOOL_SYNC} run {run_id} started by the Asset event (run_type asset_triggered)")
    wait_for_run(api, SCHOOL_SYNC, run_id, timeout=420)
    tis = require_worker_ran(api, SCHOOL_SYNC, run_id)
    plan = next(ti for ti in tis if ti["task_id"] == "plan_sync")
    log = api.task_log(SCHOOL_SYNC, run_id, "plan_sync", plan["try_number"])
    wanted = f"Triggered by the activation of: school {school_id} ({API_TYPES[api_type_id]})"
    if wanted not in log or "Syncing 1 school(s)" not in log:
        raise E2EFailure(
            f"{SCHOOL_SYNC}'s plan did not sync school {school_id} alone from the event",
            hint=log[-1500:],
        )
    exported = sorted(
        {
            ti["task_id"]
            for ti in api.task_instances(SCHOOL_SYNC, run_id)
            if ti["state"] == "success"
        }
        - {"plan_sync", "plan_lookups", "summary"}
    )
    skipped = sorted(
        {
            ti["task_id"]
            for ti in api.task_instances(SCHOOL_SYNC, run_id)
            if ti["state"] == "skipped"
        }
    )
    if not exported:
        raise E2EFailure(f"{SCHOOL_SYNC} exported nothing for school {school_id}")
    step(f"synced school {school_id} only: exported {exported}; skipped {skipped}")
    return run_id


def start_data_runs(api: AirflowAPI, tracker: Tracker) -> dict[str, str]:
    """Trigger the finance export and the reconciliation; return their run ids.

    :param api: logged-in REST client
    :param tracker: records the runs
    """
    return {
        dag_id: tracker.add(dag_id, api.trigger(dag_id))
        for dag_id in (FINANCE_EXPORT, RECONCILIATION)
    }


def finish_runs(api: AirflowAPI, dag_ids: tuple[str, ...], timeout: float) -> dict[str, int]:
    """Wait for every run of the DAGs (manual, and scheduled ones that unpausing created).

    :param api: logged-in REST client
    :param dag_ids: DAGs whose runs must all succeed
    :param timeout: seconds for all of them
    """
    counts = {}
    for dag_id in dag_ids:
        runs = api.list_runs(dag_id)
        for run in runs:
            wait_for_run(api, dag_id, run["dag_run_id"], timeout=timeout)
            require_worker_ran(api, dag_id, run["dag_run_id"])
        counts[dag_id] = len(runs)
    return counts


def require_ui_run(api: AirflowAPI, run_id: str, conf: dict[str, Any]) -> None:
    """Check through the REST API that the run started from the UI exists with the form's values.

    :param api: logged-in REST client
    :param run_id: from the URL the UI opened
    :param conf: the values typed into the form
    """
    try:
        run = api.get_run(ONBOARDING, run_id)
    except APIError as exc:
        raise E2EFailure(
            f"the UI reported run {run_id}, the REST API does not know it: {exc}"
        ) from None
    mismatched = {k: (v, run["conf"].get(k)) for k, v in conf.items() if run["conf"].get(k) != v}
    if mismatched:
        raise E2EFailure(f"the UI-triggered run has other params than typed: {mismatched}")
    step(f"UI-triggered run {run_id} is {run['state']} with conf {run['conf']}")
