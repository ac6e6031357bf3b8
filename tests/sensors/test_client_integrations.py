"""ClientIntegrationSensor in poke, reschedule and deferrable modes, against the sandbox."""

from __future__ import annotations

import datetime as dt
import json
from datetime import timedelta

import pytest

from airflow_provider_d6._compat import (
    AirflowException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_d6.exceptions import D6AuthenticationError, D6InputError
from airflow_provider_d6.sensors.client_integrations import (
    DEFERRAL_TIMEOUT_GRACE,
    ClientIntegrationSensor,
)
from tests.pairs import authorised_after, pick

TRIGGER_PATH = "airflow_provider_d6.triggers.client_integrations.ClientIntegrationTrigger"


def gets(control) -> list[dict]:
    """Return the Get Client Integrations requests d6 received."""
    return [
        r for r in control.requests() if r["method"] == "GET" and "clientintegrations" in r["path"]
    ]


class FirstTry:
    """The piece of a task instance reschedule mode reads: when the first poke happened."""

    def __init__(self, first_reschedule_date: dt.datetime | None = None) -> None:
        self.first_reschedule_date = first_reschedule_date

    def get_first_reschedule_date(self, context) -> dt.datetime | None:
        return self.first_reschedule_date


def test_returns_the_record_at_once_when_the_condition_already_holds(sandbox, d6_conn):
    school, api = pick(sandbox.control, True)

    record = ClientIntegrationSensor(
        task_id="wait", school_id=school, api_type_id=api, until="activated", timeout=60
    ).execute({})

    assert (record["school_id"], record["api_type_id"]) == (school, api)
    assert record["activated_by_integrator"] == "Yes"
    assert len(gets(sandbox.control)) == 1


def test_poke_mode_waits_until_the_school_authorises(sandbox, d6_conn):
    control = sandbox.control
    school, api = pick(control, None)
    with authorised_after(control, (school, api), polls=1):
        record = ClientIntegrationSensor(
            task_id="wait", school_id=school, api_type_id=api, poke_interval=0.2, timeout=60
        ).execute({})

    assert (record["school_id"], record["api_type_id"]) == (school, api)
    assert record["activated_by_integrator"] == "No"
    assert len(gets(control)) >= 2


def test_poke_mode_waits_for_deactivation(sandbox, d6_conn):
    control = sandbox.control
    school, api = pick(control, False)

    record = ClientIntegrationSensor(
        task_id="wait", school_id=str(school), api_type_id=str(api), until="deactivated"
    ).execute({})

    assert record["activated_by_integrator"] == "No"


def test_poke_mode_timeout_says_what_was_awaited(sandbox, d6_conn):
    school, api = pick(sandbox.control, None)
    sensor = ClientIntegrationSensor(
        task_id="wait", school_id=school, api_type_id=api, poke_interval=0.05, timeout=0.2
    )

    with pytest.raises(
        AirflowSensorTimeout, match=f"school {school} API type {api} to be authorised"
    ):
        sensor.execute({})


def test_poke_mode_soft_fail_skips_on_timeout(sandbox, d6_conn):
    school, api = pick(sandbox.control, False)
    sensor = ClientIntegrationSensor(
        task_id="wait",
        school_id=school,
        api_type_id=api,
        until="activated",
        poke_interval=0.05,
        timeout=0.2,
        soft_fail=True,
    )

    with pytest.raises(
        AirflowSkipException, match=f"school {school} API type {api} to be activated"
    ):
        sensor.execute({})


def test_reschedule_mode_frees_the_slot_until_the_condition_holds(sandbox, d6_conn):
    control = sandbox.control
    school, api = pick(control, None)
    sensor = ClientIntegrationSensor(
        task_id="wait",
        school_id=school,
        api_type_id=api,
        mode="reschedule",
        poke_interval=30,
        timeout=3600,
    )

    with pytest.raises(AirflowRescheduleException) as excinfo:
        sensor.execute({"ti": FirstTry()})
    wait = excinfo.value.reschedule_date - dt.datetime.now(dt.UTC)
    assert timedelta(seconds=20) < wait <= timedelta(seconds=30)

    control.authorise(school, api)
    first_poke = dt.datetime.now(dt.UTC) - timedelta(minutes=1)
    record = sensor.execute({"ti": FirstTry(first_poke)})
    assert (record["school_id"], record["api_type_id"]) == (school, api)


def test_reschedule_mode_times_out_from_the_first_poke(sandbox, d6_conn):
    school, api = pick(sandbox.control, None)
    sensor = ClientIntegrationSensor(
        task_id="wait", school_id=school, api_type_id=api, mode="reschedule", timeout=60
    )
    first_poke = dt.datetime.now(dt.UTC) - timedelta(hours=1)

    with pytest.raises(AirflowSensorTimeout, match=f"school {school} API type {api}"):
        sensor.execute({"ti": FirstTry(first_poke)})


def test_deferrable_mode_pokes_once_then_defers_with_every_option(sandbox, d6_conn):
    control = sandbox.control
    school, api = pick(control, False)
    sensor = ClientIntegrationSensor(
        task_id="wait",
        school_id=str(school),
        api_type_id=api,
        until="activated",
        d6_conn_id=d6_conn,
        deferrable=True,
        poke_interval=7,
        timeout=600,
        soft_fail=True,
    )
    before = dt.datetime.now().timestamp()

    with pytest.raises(TaskDeferred) as excinfo:
        sensor.execute({})

    after = dt.datetime.now().timestamp()
    classpath, kwargs = excinfo.value.trigger.serialize()
    assert classpath == TRIGGER_PATH
    deadline = kwargs.pop("deadline")
    assert before + 600 <= deadline <= after + 600
    assert kwargs == {
        "school_id": school,
        "api_type_id": api,
        "until": "activated",
        "d6_conn_id": "d6_default",
        "poke_interval": 7.0,
        "timeout": 600.0,
        "soft_fail": True,
    }
    assert excinfo.value.method_name == "execute_complete"
    assert excinfo.value.timeout == timedelta(seconds=600) + DEFERRAL_TIMEOUT_GRACE
    assert len(gets(control)) == 1


def test_deferrable_mode_returns_without_deferring_when_already_true(sandbox, d6_conn):
    school, api = pick(sandbox.control, True)

    record = ClientIntegrationSensor(
        task_id="wait", school_id=school, api_type_id=api, until="activated", deferrable=True
    ).execute({})

    assert (record["school_id"], record["api_type_id"]) == (school, api)


def test_wrong_credentials_fail_at_once_instead_of_waiting(sandbox, monkeypatch):
    connection = {
        "conn_type": "d6",
        "host": sandbox.base_url,
        "login": sandbox.username,
        "password": "Wrong-password-123456",
        "extra": {"max_retries": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    school, api = pick(sandbox.control, None)
    sandbox.control.clear_requests()

    for deferrable in (False, True):
        sensor = ClientIntegrationSensor(
            task_id="wait",
            school_id=school,
            api_type_id=api,
            poke_interval=0.05,
            timeout=3600,
            soft_fail=True,
            deferrable=deferrable,
        )
        with pytest.raises(D6AuthenticationError) as excinfo:
            sensor.execute({})
        assert "Wrong-password" not in str(excinfo.value)

    assert len(sandbox.control.requests()) == 2  # one poke each, no retry, no waiting


def test_a_transient_error_surviving_the_hook_retries_does_not_fail_the_sensor(
    sandbox, monkeypatch
):
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
    control.set_faults(script=[{"kind": "503", "times": 2, "method": "GET"}])

    record = ClientIntegrationSensor(
        task_id="wait", school_id=school, api_type_id=api, poke_interval=0.05, timeout=60
    ).execute({})

    assert (record["school_id"], record["api_type_id"]) == (school, api)
    assert [r["status"] for r in gets(control)][-1] == 200
    assert 503 in [r["status"] for r in gets(control)]


def test_bad_input_fails_before_any_request(sandbox, d6_conn):
    with pytest.raises(D6InputError, match="until") as excinfo:
        ClientIntegrationSensor(task_id="wait", school_id=1000, api_type_id=8, until="maybe")
    assert "authorised, activated, deactivated" in str(excinfo.value)

    sandbox.control.clear_requests()
    for deferrable in (False, True):
        sensor = ClientIntegrationSensor(
            task_id="wait", school_id="{{ oops }}", api_type_id=8, deferrable=deferrable
        )
        with pytest.raises(D6InputError, match="school_id"):
            sensor.execute({})
    assert sandbox.control.requests() == []


# -- completion after deferral (no d6 involved: the event is what the trigger sent) --------------


def make_sensor(**kwargs) -> ClientIntegrationSensor:
    return ClientIntegrationSensor(
        task_id="wait", school_id=1000, api_type_id=8, until="activated", **kwargs
    )


def test_success_event_returns_the_record():
    record = {"school_id": 1000, "api_type_id": 8, "activated_by_integrator": "Yes"}
    event = {"status": "success", "record": record}

    assert make_sensor().resume_execution("execute_complete", {"event": event}, {}) == record


@pytest.mark.parametrize("soft_fail", [False, True])
def test_timeout_event_times_out_or_skips_with_its_message(soft_fail):
    event = {
        "status": "timeout",
        "message": "Timed out after 60s waiting for school 1000 API type 8",
    }
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout

    with pytest.raises(expected, match="waiting for school 1000 API type 8"):
        make_sensor(soft_fail=soft_fail).resume_execution("execute_complete", {"event": event}, {})


@pytest.mark.parametrize("soft_fail", [False, True])
def test_error_event_fails_the_task_even_with_soft_fail(soft_fail):
    event = {"status": "error", "message": "Waiting for school 1000: HTTP 401: bad credentials"}

    with pytest.raises(AirflowException, match="HTTP 401") as excinfo:
        make_sensor(soft_fail=soft_fail).resume_execution("execute_complete", {"event": event}, {})
    assert not isinstance(excinfo.value, AirflowSkipException)


def test_airflow_deferral_timeout_still_becomes_a_sensor_timeout():
    with pytest.raises(AirflowSensorTimeout):
        make_sensor().resume_execution("__fail__", {"error": "Trigger timeout"}, {})
