"""The compatibility layer on whichever Airflow this venv has (make test-matrix runs every one)."""

from __future__ import annotations

import importlib.metadata
import uuid

import pytest
from packaging.version import Version

import airflow_provider_d6._compat as compat
from airflow_provider_d6.hooks._config import prepare_connection

NO_OVERRIDES = dict.fromkeys(
    ("timeout", "max_retries", "requests_per_second", "activation_route", "verify")
)


def test_this_airflow_is_one_the_provider_supports():
    airflow = Version(importlib.metadata.version("apache-airflow"))
    assert Version("3.1") <= airflow
    requirement = next(
        r
        for r in importlib.metadata.requires("airflow-provider-d6") or []
        if r.startswith("apache-airflow>=")
    )
    assert airflow >= Version(requirement.partition(">=")[2])


@pytest.mark.parametrize("name", compat.__all__)
def test_every_compat_name_resolves_on_this_airflow(name):
    assert getattr(compat, name) is not None


def test_the_exceptions_are_the_ones_airflow_acts_on():
    # A sensor's skip or timeout only skips or fails the task if the task runner recognises it.
    from airflow.sdk.execution_time import task_runner

    source = vars(task_runner)
    for name in ("AirflowSkipException", "AirflowSensorTimeout", "TaskDeferred"):
        if name in source:
            assert source[name] is getattr(compat, name), name


def test_prepare_connection_masks_the_password_on_this_airflow():
    from airflow.sdk import Connection

    password = f"Probe-{uuid.uuid4().hex}"
    unrelated = f"Unrelated-{uuid.uuid4().hex}"
    # Built directly, not looked up: a lookup through Airflow would mask the password itself, and
    # hide a prepare_connection that does not.
    conn = Connection(
        conn_id="d6_mask_probe",
        conn_type="d6",
        host="https://integrate.d6plus.co.za/api",
        login="integrator",
        password=password,
    )
    prepare_connection(conn, dict(NO_OVERRIDES), None)
    logged = str(compat.redact(f"auth {password} then {unrelated}"))
    assert password not in logged
    assert unrelated in logged


def test_the_async_hooks_preparation_masks_the_password_on_this_airflow():
    # The triggerer's way (aprepare_connection) masks asynchronously on 3.3.2+ and in a worker
    # thread before; either way the password must be masked when it returns.
    import asyncio

    from airflow.sdk import Connection

    from airflow_provider_d6.hooks._config import aprepare_connection

    password = f"Probe-{uuid.uuid4().hex}"
    unrelated = f"Unrelated-{uuid.uuid4().hex}"
    conn = Connection(
        conn_id="d6_mask_probe",
        conn_type="d6",
        host="https://integrate.d6plus.co.za/api",
        login="integrator",
        password=password,
        extra='{"timeout": 12}',
    )
    settings, _, _ = asyncio.run(aprepare_connection(conn, dict(NO_OVERRIDES), None))
    assert settings.timeout == 12  # the extras were read, through the async way
    logged = str(compat.redact(f"auth {password} then {unrelated}"))
    assert password not in logged
    assert unrelated in logged
