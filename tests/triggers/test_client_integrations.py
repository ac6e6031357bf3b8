"""ClientIntegrationTrigger: serialization and its three outcomes against the sandbox."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_d6.triggers.client_integrations import (
    ClientIntegrationTrigger,
    condition_met,
)
from tests.pairs import authorised_after, pick

TRIGGER_PATH = "airflow_provider_d6.triggers.client_integrations.ClientIntegrationTrigger"


def run_to_end(trigger: ClientIntegrationTrigger) -> list[dict]:
    """Run the trigger until its generator finishes; return every event payload it yielded."""

    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def first_event(trigger: ClientIntegrationTrigger) -> dict:
    """Return the payload of the trigger's first event, as the triggerer would receive it."""
    return asyncio.run(trigger.run().__anext__()).payload


def test_serialize_pins_the_classpath_and_json_safe_kwargs():
    trigger = ClientIntegrationTrigger(
        school_id=1000,
        api_type_id=8,
        until="activated",
        d6_conn_id="d6_onboarding",
        poke_interval=30,
        timeout=3600,
        soft_fail=True,
        deadline=1_900_000_000.5,
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == TRIGGER_PATH
    assert kwargs == {
        "school_id": 1000,
        "api_type_id": 8,
        "until": "activated",
        "d6_conn_id": "d6_onboarding",
        "poke_interval": 30.0,
        "timeout": 3600.0,
        "soft_fail": True,
        "deadline": 1_900_000_000.5,
    }
    rebuilt = ClientIntegrationTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_the_deadline_is_computed_once_and_survives_a_restart():
    before = time.time()
    trigger = ClientIntegrationTrigger(
        school_id="1000", api_type_id="9", until="authorised", timeout=60
    )
    _, kwargs = trigger.serialize()
    assert before + 60 <= kwargs["deadline"] <= time.time() + 60
    assert (kwargs["school_id"], kwargs["api_type_id"]) == (1000, 9)

    time.sleep(0.01)
    restarted = ClientIntegrationTrigger(**kwargs)
    assert restarted.deadline == trigger.deadline


def test_an_unknown_state_is_rejected():
    with pytest.raises(ValueError, match="authorised, activated, deactivated"):
        ClientIntegrationTrigger(school_id=1000, api_type_id=8, until="maybe")


@pytest.mark.parametrize(
    ("record", "until", "met"),
    [
        (None, "authorised", False),
        (None, "deactivated", False),
        ({"activated_by_integrator": "No"}, "authorised", True),
        ({"activated_by_integrator": "No"}, "activated", False),
        ({"activated_by_integrator": "No"}, "deactivated", True),
        ({"activated_by_integrator": "Yes"}, "activated", True),
        ({"activated_by_integrator": "Yes"}, "deactivated", False),
    ],
)
def test_condition(record, until, met):
    assert condition_met(record, until) is met


def test_success_when_the_condition_already_holds(sandbox, d6_conn):
    school, api = pick(sandbox.control, True)
    trigger = ClientIntegrationTrigger(
        school, api, "activated", d6_conn, poke_interval=0.1, timeout=30
    )

    events = run_to_end(trigger)

    assert len(events) == 1
    assert events[0]["status"] == "success"
    record = events[0]["record"]
    assert (record["school_id"], record["api_type_id"], record["activated_by_integrator"]) == (
        school,
        api,
        "Yes",
    )
    json.dumps(events[0])  # a plain, JSON-safe payload


def test_success_after_the_school_authorises_a_few_polls_in(sandbox, d6_conn):
    control = sandbox.control
    school, api = pick(control, None)
    trigger = ClientIntegrationTrigger(
        school, api, "authorised", d6_conn, poke_interval=0.2, timeout=60
    )
    with authorised_after(control, (school, api), polls=2):
        event = first_event(trigger)

    assert event["status"] == "success"
    assert (event["record"]["school_id"], event["record"]["api_type_id"]) == (school, api)
    polls = [r for r in control.requests() if r["method"] == "GET"]
    assert len(polls) >= 3


def test_timeout_event_names_what_was_awaited(sandbox, d6_conn):
    school, api = pick(sandbox.control, None)
    trigger = ClientIntegrationTrigger(
        school, api, "authorised", d6_conn, poke_interval=0.05, timeout=0.2, soft_fail=True
    )

    events = run_to_end(trigger)

    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert f"school {school} API type {api} to be authorised" in events[0]["message"]
    assert events[0]["soft_fail"] is True


def test_a_deadline_already_passed_times_out_after_one_poll(sandbox, d6_conn):
    school, api = pick(sandbox.control, False)
    sandbox.control.clear_requests()
    trigger = ClientIntegrationTrigger(
        school, api, "activated", d6_conn, poke_interval=60, timeout=60, deadline=time.time() - 1
    )

    assert first_event(trigger)["status"] == "timeout"
    assert len(sandbox.control.requests()) == 1


def test_wrong_credentials_give_an_error_event_at_once(sandbox, monkeypatch):
    connection = {
        "conn_type": "d6",
        "host": sandbox.base_url,
        "login": sandbox.username,
        "password": "Wrong-password-123456",
        "extra": {"max_retries": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    school, api = pick(sandbox.control, True)
    sandbox.control.clear_requests()
    trigger = ClientIntegrationTrigger(
        school, api, "activated", "d6_default", poke_interval=0.05, timeout=3600
    )

    events = run_to_end(trigger)

    assert [event["status"] for event in events] == ["error"]
    assert f"school {school} API type {api}" in events[0]["message"]
    assert "401" in events[0]["message"]
    assert "Wrong-password" not in events[0]["message"]
    assert len(sandbox.control.requests()) == 1


def test_transient_errors_keep_the_trigger_polling(sandbox, monkeypatch):
    connection = {
        "conn_type": "d6",
        "host": sandbox.base_url,
        "login": sandbox.username,
        "password": sandbox.password,
        "extra": {"max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    control = sandbox.control
    school, api = pick(control, True)
    control.set_faults(script=[{"kind": "500", "times": 2, "method": "GET"}])
    trigger = ClientIntegrationTrigger(
        school, api, "activated", "d6_default", poke_interval=0.05, timeout=60
    )

    event = first_event(trigger)

    assert event["status"] == "success"
    assert [r["status"] for r in control.requests()][:2] == [500, 500]


def test_a_missing_connection_gives_an_error_event_naming_it(sandbox, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_D6_NOWHERE", raising=False)
    trigger = ClientIntegrationTrigger(
        1000, 8, "authorised", "d6_nowhere", poke_interval=0.05, timeout=3600
    )

    events = run_to_end(trigger)

    assert [event["status"] for event in events] == ["error"]
    assert "d6_nowhere" in events[0]["message"]
    assert sandbox.control.requests() == []
