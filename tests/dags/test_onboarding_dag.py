"""d6_onboarding end to end on a sandbox: wait for the school, activate, verify, summarise."""

from __future__ import annotations

import threading

import pytest
from dag_helpers import task_states, writes, xcom

pytestmark = pytest.mark.slow


def _unauthorised_school(handle, api_type_id: int = 8) -> dict:
    """Return a seeded school that has not authorised *api_type_id*."""
    listed = {
        (r["school_id"], r["api_type_id"]) for r in handle.control.data("client_integrations")
    }
    return next(
        s for s in handle.control.data("schools") if (s["school_id"], api_type_id) not in listed
    )


def _pair_record(handle, school_id: int, api_type_id: int) -> dict | None:
    records = handle.control.data("client_integrations", school_id=school_id)
    return next((r for r in records if r["api_type_id"] == api_type_id), None)


def _lookups(handle, school_id: int) -> int:
    """Count the Get Client Integrations requests made for *school_id* so far."""
    return sum(
        1
        for request in handle.control.requests()
        if request["method"] == "GET"
        and request["path"].endswith("/settings/clientintegrations")
        and str(request["query"].get("school_id")) == str(school_id)
    )


def _authorise_once_waiting(handle, school_id: int, api_type_id: int) -> threading.Event:
    """Authorise the pair, as the school would, once the DAG has looked for it twice.

    The lookup task and the sensor's first poke each look once; after that the sensor is
    deferring, so the authorisation lands in the middle of its wait whatever the machine's speed.
    Set the returned event to give up.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            if _lookups(handle, school_id) >= 2:
                handle.control.authorise(school_id, api_type_id)
                return

    threading.Thread(target=watch, daemon=True).start()
    return stop


def test_onboarding_waits_for_authorisation_then_activates(dagbag, airflow_db, district):
    # Counts the writes of the documented v2 route (the live profile's v1 fallback adds one).
    district.control.configure(profile="docs")
    dag = dagbag.dags["d6_onboarding"]
    school = _unauthorised_school(district)
    school_id = school["school_id"]
    conf = {"school_id": school_id, "api_type_id": 8, "wait_for_authorisation_minutes": 2}
    stop = _authorise_once_waiting(district, school_id, 8)
    try:
        dag_run = dag.test(run_conf=conf)
    finally:
        stop.set()

    assert dag_run.state == "success", task_states(dag_run)
    assert _pair_record(district, school_id, 8)["activated_by_integrator"] == "Yes"
    summary = xcom(dag_run, "summary")
    assert summary["school_name"] == school["school_name"]
    assert summary["api_type"] == "Admin+ API"
    assert (summary["before"], summary["after"], summary["changed"]) == (
        "not authorised",
        "activated",
        True,
    )
    assert summary["waited_for_authorisation_seconds"] > 0
    # Lookup, the sensor's poke, then the triggerer's polls until it saw the authorisation.
    assert _lookups(district, school_id) >= 3
    activations = writes(district)
    assert len(activations) == 1, activations

    # A second run finds the pair already activated: it succeeds and writes nothing.
    district.control.clear_requests()
    again = dag.test(run_conf=conf)
    assert again.state == "success", task_states(again)
    assert writes(district) == []
    summary = xcom(again, "summary")
    assert (summary["before"], summary["after"], summary["changed"]) == (
        "activated",
        "activated",
        False,
    )


def test_onboarding_dry_run_changes_nothing(dagbag, airflow_db, district):
    pending = next(
        r
        for r in district.control.data("client_integrations")
        if r["activated_by_integrator"] == "No"
    )
    conf = {
        "school_id": pending["school_id"],
        "api_type_id": pending["api_type_id"],
        "dry_run": True,
    }

    dag_run = dagbag.dags["d6_onboarding"].test(run_conf=conf)

    assert dag_run.state == "success", task_states(dag_run)
    assert writes(district) == []
    assert (
        _pair_record(district, pending["school_id"], pending["api_type_id"])[
            "activated_by_integrator"
        ]
        == "No"
    )
    summary = xcom(dag_run, "summary")
    assert summary["before"] == "authorised, not activated"
    assert summary["after"] == "would be activated (dry run)"


def test_onboarding_times_out_with_a_clear_message(dagbag, airflow_db, district, capfd):
    school_id = _unauthorised_school(district)["school_id"]
    # 0.05 minutes: three seconds of waiting for a school that never authorises.
    conf = {"school_id": school_id, "api_type_id": 8, "wait_for_authorisation_minutes": 0.05}

    dag_run = dagbag.dags["d6_onboarding"].test(run_conf=conf)

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states[("wait_for_authorisation", -1)] == "failed"
    assert states[("activate", -1)] == "upstream_failed"
    assert writes(district) == []
    # The sensor's failure says what it waited for, for how long, and that time ran out.
    output = capfd.readouterr()
    lines = (output.out + output.err).splitlines()
    assert any(
        "Timed out after 3s" in line
        and f"school {school_id} API type 8" in line
        and "authorised" in line
        for line in lines
    ), "no timeout message naming the school and API type"
