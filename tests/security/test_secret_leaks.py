"""The integrator password never leaks: not into task logs, XCom, rendered fields, errors or reprs.

Every example DAG runs against a sandbox whose password is a fresh random sentinel; afterwards
everything Airflow kept is scanned for it — every file under ``AIRFLOW_HOME`` (task logs and the
SQLite metadata database included), the XCom and rendered-template-field rows, the captured
output and log records, the files the DAGs wrote, and the sandbox's request log.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import traceback
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_d6.exceptions import D6AuthenticationError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.support import parse_dags

AIRFLOW_HOME = Path(os.environ["AIRFLOW_HOME"])
EXAMPLE_DAGS = ("d6_onboarding", "d6_nightly_reconciliation", "d6_finance_export", "d6_school_sync")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def sentinel(prefix: str) -> str:
    """Return a random password of 25 characters that appears nowhere by chance."""
    return f"{prefix}-{secrets.token_hex(10)}"


def connect(
    monkeypatch: pytest.MonkeyPatch, handle: Any, password: str | None = None, **extra: Any
) -> None:
    """Point ``d6_default`` at *handle* (with *password*, when given, instead of its own)."""
    conn = {
        "conn_type": "d6",
        "host": handle.base_url,
        "login": handle.username,
        "password": password or handle.password,
        "extra": {"max_retries": 2, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(conn))


def files_containing(root: Path, *needles: str) -> list[str]:
    """Return the files under *root* whose bytes contain any of *needles* (UTF-8)."""
    wanted = [needle.encode() for needle in needles]
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if any(needle in data for needle in wanted):
                hits.append(str(path))
    return hits


def kept_rows(dag_ids: tuple[str, ...]) -> dict[str, list[str]]:
    """Return the XCom values and rendered template fields of *dag_ids* as JSON text per row."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id.in_(dag_ids))).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id.in_(dag_ids))
        ).all()
        return {
            "xcom": [
                f"{x.dag_id}.{x.task_id}.{x.key}: {json.dumps(x.value, default=str)}" for x in xcoms
            ],
            "rendered": [
                f"{r.dag_id}.{r.task_id}: {json.dumps(r.rendered_fields, default=str)} {getattr(r, 'k8s_pod_yaml', None)!r}"
                for r in rendered
            ],
        }


def run_conf(dag_id: str, handle: Any, tmp_path: Path) -> dict[str, Any]:
    """Return a run configuration that makes *dag_id* do real work against *handle*."""
    integrations = handle.control.data("client_integrations")
    if dag_id == "d6_onboarding":
        waiting = next(r for r in integrations if r["activated_by_integrator"] == "No")
        return {
            "school_id": waiting["school_id"],
            "api_type_id": waiting["api_type_id"],
            "wait_for_authorisation_minutes": 1,
        }
    if dag_id == "d6_nightly_reconciliation":
        path = tmp_path / "desired.json"
        path.write_text(
            json.dumps(
                [
                    {
                        "school_id": r["school_id"],
                        "api_type_id": r["api_type_id"],
                        "state": r["activated_by_integrator"] == "No",
                    }
                    for r in integrations[:6]
                ]
            )
        )
        return {"desired_states_path": str(path)}
    if dag_id == "d6_finance_export":
        return {"storage_root": str(tmp_path / "exports")}
    if dag_id == "d6_school_sync":
        return {"storage_root": str(tmp_path / "sync")}
    raise AssertionError(f"no run configuration for the example DAG {dag_id}: add one")


@pytest.fixture(scope="module")
def example_dags():
    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_every_example_dag_runs_without_leaking_the_password(
    example_dags, airflow_db, make_sandbox, monkeypatch, tmp_path, caplog, capfd
):
    password = sentinel("Dag-secret")
    # d6_school_sync's pseudonym key is a secret too: it must not leak either.
    key = sentinel("Pseudonym-key")
    handle = make_sandbox(password=password, schools=8, learners_per_school=10)
    connect(monkeypatch, handle)
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_PSEUDONYM_KEY", json.dumps({"conn_type": "generic", "password": key})
    )
    monkeypatch.setenv("AIRFLOW__D6__DESIRED_STATES_DIR", str(tmp_path))
    assert set(example_dags) == set(EXAMPLE_DAGS), "a new example DAG must be added to this scan"

    caplog.set_level("DEBUG")
    states = {}
    for dag_id in EXAMPLE_DAGS:
        dag_run = example_dags[dag_id].test(run_conf=run_conf(dag_id, handle, tmp_path))
        states[dag_id] = dag_run.state
    assert states == dict.fromkeys(EXAMPLE_DAGS, "success")
    assert handle.control.requests(), "the DAGs never reached d6"

    rows = kept_rows(EXAMPLE_DAGS)
    assert rows["xcom"] and rows["rendered"], "nothing was kept to scan"
    output = capfd.readouterr()
    secret = (password, key)

    def leaks(text: str) -> bool:
        return any(needle in text for needle in secret)

    scanned = {
        "AIRFLOW_HOME files": files_containing(AIRFLOW_HOME, *secret),
        "files the DAGs wrote": files_containing(tmp_path, *secret),
        "XCom rows": [row for row in rows["xcom"] if leaks(row)],
        "rendered template fields": [row for row in rows["rendered"] if leaks(row)],
        "log records": [r.getMessage() for r in caplog.records if leaks(r.getMessage())],
        "captured stdout/stderr": [
            line for line in (output.out + output.err).splitlines() if leaks(line)
        ],
        "sandbox request log": [e for e in handle.control.requests() if leaks(json.dumps(e))],
    }
    task_logs = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    # The scan saw the task logs: what the operators log about their work is in there.
    assert "Outcome:" in task_logs and "Wrote learners" in task_logs
    assert "Wrote parents" in task_logs and list((tmp_path / "sync").rglob("parents.jsonl"))
    print(
        f"\n[secrets] files under AIRFLOW_HOME: {sorted(str(p.relative_to(AIRFLOW_HOME)) for p in AIRFLOW_HOME.rglob('*') if p.is_file())}"
    )
    print(
        f"\n[secrets] scanned {len(rows['xcom'])} XCom rows, {len(rows['rendered'])} rendered-field rows, "
        f"{sum(1 for p in AIRFLOW_HOME.rglob('*') if p.is_file())} files, {len(caplog.records)} log records"
    )
    assert {where: hits for where, hits in scanned.items() if hits} == {}


def test_a_wrong_password_leaks_neither_password(
    example_dags, airflow_db, make_sandbox, monkeypatch, tmp_path, caplog, capfd
):
    password = sentinel("Right-secret")
    wrong = sentinel("Wrong-secret")
    handle = make_sandbox(password=password, schools=4, learners_per_school=5)
    connect(monkeypatch, handle, password=wrong)
    caplog.set_level("DEBUG")

    with pytest.raises(D6AuthenticationError) as caught:
        D6Hook().get_client_integrations()
    error = caught.value
    texts = [str(error), repr(error), repr(vars(error)), "".join(traceback.format_exception(error))]
    assert error.status_code == 401
    assert not [text for text in texts if wrong in text or password in text]

    ok, message = D6Hook().test_connection()
    assert not ok and "401" in message
    assert wrong not in message and password not in message

    dag_run = example_dags["d6_finance_export"].test(
        run_conf={"storage_root": str(tmp_path / "exports")}
    )
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    captured = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in captured or "Invalid username or password" in captured, (
        "the failure was not reported"
    )
    assert wrong not in captured and password not in captured
    assert files_containing(AIRFLOW_HOME, wrong, password) == []
    log = handle.control.requests()
    assert log and all(entry["status"] == 401 for entry in log)
    assert wrong not in json.dumps(log)


def test_repr_and_str_never_show_the_password(make_sandbox, monkeypatch):
    from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
    from airflow_provider_d6.operators.debtor_notes import D6DebtorNoteOperator
    from airflow_provider_d6.operators.storage import D6ToStorageOperator
    from airflow_provider_d6.sensors.client_integrations import ClientIntegrationSensor

    password = sentinel("Repr-secret")
    handle = make_sandbox(password=password, schools=2, learners_per_school=5)
    connect(monkeypatch, handle)

    hook = D6Hook()
    hook.get_client_integrations()  # loaded: settings and session exist
    async_hook = D6AsyncHook()

    async def use_async() -> None:
        try:
            await async_hook.get_client_integration(1000, 8)
        finally:
            await async_hook.close()

    asyncio.run(use_async())
    operators = [
        ClientIntegrationsOperator(task_id="integrations"),
        D6ToStorageOperator(task_id="export", resource="schools", path="/tmp/schools.jsonl"),
        D6DebtorNoteOperator(task_id="note", school_id=1000, action="delete", note_id=1),
        ClientIntegrationSensor(task_id="wait", school_id=1000, api_type_id=8, deferrable=False),
    ]
    for operator in operators:
        operator.hook.get_client_integrations()
    from airflow_provider_d6.triggers.client_integrations import ClientIntegrationTrigger

    trigger = ClientIntegrationTrigger(school_id=1000, api_type_id=8, until="activated")
    shown = [
        repr(hook),
        str(hook),
        repr(hook.settings),
        str(hook.settings),
        repr(async_hook),
        str(async_hook),
        repr(handle),
        repr(trigger),
        json.dumps(trigger.serialize()),
    ]
    shown += [
        text
        for operator in operators
        for text in (repr(operator), str(operator), repr(operator.hook))
    ]
    assert [text for text in shown if password in text] == []
    assert handle.control.requests(), "the hooks never reached d6"
