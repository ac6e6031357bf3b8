"""A DAG of sensor → operator runs end to end under dag.test(), the trigger running inline."""

from __future__ import annotations

import json
import textwrap
import threading

import pytest

from airflow_provider_d6.hooks.client_integration_state import is_activated

DAG_ID = "d6_test_wait_then_activate"
DAG_FILE = textwrap.dedent(
    f'''
    """Wait for a school to authorise the integrator, then activate the integration."""

    from __future__ import annotations

    import datetime as dt

    from airflow.sdk import DAG, Param

    from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
    from airflow_provider_d6.sensors.client_integrations import ClientIntegrationSensor

    with DAG(
        "{DAG_ID}",
        schedule=None,
        start_date=dt.datetime(2024, 1, 1),
        catchup=False,
        params={{"school_id": Param(1000, type="integer"), "api_type_id": Param(8, type="integer")}},
    ):
        wait = ClientIntegrationSensor(
            task_id="wait_for_authorisation",
            school_id="{{{{ params.school_id }}}}",
            api_type_id="{{{{ params.api_type_id }}}}",
            until="authorised",
            deferrable=True,
            poke_interval=0.5,
            timeout=120,
        )
        activate = ClientIntegrationsOperator(
            task_id="activate",
            school_id="{{{{ params.school_id }}}}",
            api_type_id="{{{{ params.api_type_id }}}}",
            state=True,
        )
        wait >> activate
    '''
)


def authorise_once_polled(control, school_id: int, api_type_id: int, stop: threading.Event) -> None:
    """Authorise the pair a second after the sensor first asked about it, as a school would."""
    while not stop.is_set():
        asked = [
            r
            for r in control.requests()
            if r["method"] == "GET" and r["query"].get("school_id") in (school_id, str(school_id))
        ]
        if asked:
            stop.wait(1.0)
            control.authorise(school_id, api_type_id)
            return
        stop.wait(0.1)


@pytest.mark.slow
def test_sensor_then_operator_under_dag_test(airflow_db, sandbox, d6_conn, tmp_path, monkeypatch):
    (tmp_path / "wait_then_activate.py").write_text(DAG_FILE)
    # dag.test() finds the DAG through a configured bundle. A bundle of its own keeps this file out
    # of the project's dags/ folder; the default bundle stays configured, after it.
    bundles = [
        {
            "name": "d6-provider-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(tmp_path)},
        },
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    from airflow_provider_d6._compat import DagBag

    dag = DagBag(dag_folder=str(tmp_path)).get_dag(DAG_ID)
    control = sandbox.control
    listed = {(r["school_id"], r["api_type_id"]) for r in control.data("client_integrations")}
    school, api = next(
        (s["school_id"], api)
        for s in control.data("schools")
        for api in (8, 9)
        if (s["school_id"], api) not in listed
    )
    control.clear_requests()
    stop = threading.Event()
    school_side = threading.Thread(
        target=authorise_once_polled, args=(control, school, api, stop), daemon=True
    )
    school_side.start()
    try:
        dag_run = dag.test(run_conf={"school_id": school, "api_type_id": api})
    finally:
        stop.set()
        school_side.join(timeout=5)

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert states == {"wait_for_authorisation": "success", "activate": "success"}
    record = next(
        r
        for r in control.data("client_integrations")
        if (r["school_id"], r["api_type_id"]) == (school, api)
    )
    assert is_activated(record)
    log = control.requests()
    first_write = next(i for i, r in enumerate(log) if r["method"] not in ("GET", "HEAD"))
    # The sensor's first poke found nothing; the trigger polled until the school authorised; the
    # operator then fetched the pair once and wrote once.
    assert sum(r["method"] == "GET" for r in log[:first_write]) >= 3
