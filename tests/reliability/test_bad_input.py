"""Bad input, table-driven: every refusal is a typed ``D6Error`` naming the field or the problem.

Input mistakes (connection, hook arguments, operator and sensor arguments, desired-states files)
must fail before anything is sent: the sandbox's request log stays empty. Answers d6 (or a proxy
in front of it) may give — an HTML 403, an empty 200, truncated JSON, an array where an object
belongs, ``route_not_found``, an unknown API type — become the matching error class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_d6.exceptions import (
    D6AuthenticationError,
    D6ConfigurationError,
    D6Error,
    D6ForbiddenError,
    D6InputError,
    D6NotActivatedError,
    D6NotAuthorisedError,
    D6NotFoundError,
    D6ResponseError,
    D6ValidationError,
)
from airflow_provider_d6.hooks.d6 import D6Hook
from d6_sandbox.testing import SandboxHandle, run_sandbox

DAGS = Path(__file__).resolve().parents[2] / "dags"
TODAY = date.today()
PASSWORD = "Bad-input-pw-5c1e77a0"


@dataclass
class Env:
    """What a case needs: the sandbox, ids in known states, and a way to define connections."""

    sandbox: SandboxHandle
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    shapes_url: str
    school_id: int  # has an activated integration, so Finance+ answers for it
    unlicensed_school_id: int  # has no activated integration: Finance+ answers 401
    accountable_person_id: int

    def connect(
        self, conn_id: str = "d6_default", base_url: str | None = None, **fields: Any
    ) -> str:
        """Define *conn_id* in the environment; *fields* override login, password, extra."""
        conn = {
            "conn_type": "d6",
            "host": base_url or self.sandbox.base_url,
            "login": self.sandbox.username,
            "password": self.sandbox.password,
            "extra": {"max_retries": 1},
        }
        conn.update(fields)
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    def hook(self, **kwargs: Any) -> D6Hook:
        """Return a hook on ``d6_default`` (the sandbox unless a case redefined it)."""
        return D6Hook("d6_default", **kwargs)

    def faults(self, kind: str) -> None:
        """Answer the next d6 request with fault *kind*."""
        self.sandbox.control.set_faults(script=[{"kind": kind, "times": 1}])

    def file(self, name: str, text: str) -> str:
        """Write a desired-states file and return its path."""
        path = self.tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@dataclass
class Case:
    """One bad input and the error it must produce.

    :param run: does the bad thing
    :param error: the exact error class expected
    :param mentions: text the message must contain (the field, or the response problem)
    :param field: for input errors, the ``field`` attribute expected
    :param sends: how many d6 requests the case sends: 0 for every input error, 1 for an answer
        that retrying cannot change, None for "some" (whether to retry it is the hook's choice)
    """

    id: str
    run: Callable[[Env], Any]
    error: type[D6Error]
    mentions: tuple[str, ...]
    field: str | None = None
    sends: int | None = 0
    check: Callable[[D6Error], bool] | None = dataclasses.field(default=None, repr=False)


def drain(iterable: Any) -> list[Any]:
    """Consume a generator so that a lazy hook method runs."""
    return list(iterable)


def note(env: Env, **overrides: Any) -> dict[str, Any]:
    """Return valid Create Note arguments with *overrides*."""
    fields = {
        "accountable_person_id": env.accountable_person_id,
        "date": TODAY.isoformat(),
        "note_type_id": 1,
        "communication_type_id": 1,
        "note": "bad input table",
    }
    fields.update(overrides)
    return fields


def promise(**overrides: Any) -> dict[str, Any]:
    """Return a valid promise-to-pay item with *overrides*."""
    item = {"date_promised": TODAY.isoformat(), "amount_promised": "150.00"}
    item.update(overrides)
    return item


def integrations_op(**kwargs: Any) -> Any:
    from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator

    return ClientIntegrationsOperator(task_id="integrations", **kwargs).execute({})


def storage_op(env: Env, **kwargs: Any) -> Any:
    from airflow_provider_d6.operators.storage import D6ToStorageOperator

    kwargs.setdefault("path", str(env.tmp_path / "out.jsonl"))
    kwargs.setdefault("resource", "learners")
    kwargs.setdefault("school_id", env.school_id)
    return D6ToStorageOperator(task_id="export", **kwargs).execute({})


def note_op(env: Env, **kwargs: Any) -> Any:
    from airflow_provider_d6.operators.debtor_notes import D6DebtorNoteOperator

    kwargs.setdefault("school_id", env.school_id)
    return D6DebtorNoteOperator(task_id="note", **kwargs).execute({})


def sensor(**kwargs: Any) -> Any:
    from airflow_provider_d6.sensors.client_integrations import ClientIntegrationSensor

    kwargs.setdefault("mode", "poke")
    kwargs.setdefault("timeout", 1)
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("deferrable", False)
    return ClientIntegrationSensor(task_id="wait", **kwargs).execute({})


def trigger(**kwargs: Any) -> Any:
    from airflow_provider_d6.triggers.client_integrations import ClientIntegrationTrigger

    arguments = {"school_id": 1000, "api_type_id": 8, "until": "activated", **kwargs}
    return ClientIntegrationTrigger(**arguments)


def finance_root(root: str) -> Callable[[Env], Any]:
    from airflow_provider_d6.operators.storage import check_storage_root

    return lambda env: check_storage_root(root)


def load_desired_states(path: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        "d6_reconciliation_dag", DAGS / "d6_nightly_reconciliation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.load_desired_states(path)


def school_sync_plan(**params: Any) -> Callable[[Env], Any]:
    """Run d6_school_sync's plan task with these trigger-form params (and the defaults)."""

    def run(env: Env) -> Any:
        spec = importlib.util.spec_from_file_location(
            "d6_school_sync_dag", DAGS / "d6_school_sync.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        env.monkeypatch.setenv(
            "AIRFLOW_CONN_D6_PSEUDONYM_KEY",
            json.dumps({"conn_type": "generic", "password": "bad-input-pseudonym-key-0123"}),
        )
        form = {
            "storage_root": str(env.tmp_path),
            "sync_date": None,
            "school_ids": [],
            "pseudonymise": [],
            "drop_fields": [],
        }
        interval = params.pop("data_interval", None)
        if params.pop("without_key", False):
            env.monkeypatch.delenv("AIRFLOW_CONN_D6_PSEUDONYM_KEY")
        context: dict[str, Any] = {}
        if interval:
            context = {"data_interval_start": interval[0], "data_interval_end": interval[1]}
        plan = module.dag.get_task("plan_sync").python_callable
        return plan(params={**form, **params}, **context)

    return run


def on_sandbox(call: Callable[[Env], Any], **conn: Any) -> Callable[[Env], Any]:
    """Redefine ``d6_default`` with *conn* (login, password, extra, base_url), then *call*."""

    def run(env: Env) -> Any:
        env.connect(**conn)
        return call(env)

    return run


def after_fault(kind: str, call: Callable[[Env], Any]) -> Callable[[Env], Any]:
    """Answer the next d6 request with fault *kind*, then *call*."""

    def run(env: Env) -> Any:
        env.faults(kind)
        return call(env)

    return run


def shape(name: str, call: Callable[[Env], Any]) -> Callable[[Env], Any]:
    """Point ``d6_default`` at the wrong-shape server's */name*, then *call*."""

    def run(env: Env) -> Any:
        env.connect(base_url=f"{env.shapes_url}/{name}/api")
        return call(env)

    return run


def get_school(env: Env) -> Any:
    return env.hook().get_school(env.school_id)


def create_note(**overrides: Any) -> Callable[[Env], Any]:
    return lambda env: env.hook().create_note(env.school_id, **note(env, **overrides))


def promise_note(**item: Any) -> Callable[[Env], Any]:
    return create_note(note_type_id=2, promise_to_pays=[promise(**item)])


def desired_file(name: str, text: str) -> Callable[[Env], Any]:
    return lambda env: load_desired_states(env.file(name, text))


def transactions(**filters: Any) -> Callable[[Env], Any]:
    return lambda env: drain(env.hook().iter_financial_transactions(env.school_id, **filters))


def learners(**filters: Any) -> Callable[[Env], Any]:
    return lambda env: drain(env.hook().iter_learners(env.school_id, **filters))


IN_3_YEARS = TODAY.replace(year=TODAY.year + 3, day=1).isoformat()
LAST_YEAR = TODAY.replace(year=TODAY.year - 1, month=6, day=1).isoformat()
PAIR = "- {school_id: 1000, api_type_id: 8, state: true}\n"
Input = D6InputError
Config = D6ConfigurationError

# fmt: off
CASES = [
    # -- the connection --------------------------------------------------------------------------
    Case("conn-empty-password", on_sandbox(get_school, password=""), Config, ("password",)),
    Case("conn-missing", lambda e: D6Hook("d6_nowhere").get_school(1000), Config, ("d6_nowhere",)),
    Case("conn-http-not-loopback",
         on_sandbox(get_school, base_url="http://integrate.example.invalid/api"),
         Config, ("http://", "https://")),
    Case("conn-bad-activation-route", on_sandbox(get_school, extra={"activation_route": "v3"}),
         Config, ("activation_route", "v3")),
    Case("conn-timeout-not-a-number", on_sandbox(get_school, extra={"timeout": "soon"}),
         Config, ("timeout", "soon")),
    Case("conn-negative-max-retries", on_sandbox(get_school, extra={"max_retries": -2}),
         Config, ("max_retries",)),
    Case("conn-max-response-bytes-text",
         on_sandbox(get_school, extra={"max_response_bytes": "lots"}),
         Config, ("max_response_bytes", "lots", "65536")),
    Case("conn-max-response-bytes-too-small",
         on_sandbox(get_school, extra={"max_response_bytes": 1024}),
         Config, ("max_response_bytes", "[65536, 1073741824]")),
    Case("conn-max-response-bytes-too-large",
         on_sandbox(get_school, extra={"max_response_bytes": 10**12}),
         Config, ("max_response_bytes", "1073741824")),
    Case("conn-max-response-bytes-fraction",
         on_sandbox(get_school, extra={"max_response_bytes": 100000.5}),
         Config, ("max_response_bytes", "an integer")),
    Case("conn-max-response-bytes-true",
         on_sandbox(get_school, extra={"max_response_bytes": True}),
         Config, ("max_response_bytes",)),
    Case("conn-max-response-bytes-arabic-indic",
         on_sandbox(get_school, extra={"max_response_bytes": "١٠٠٠٠٠"}),
         Config, ("max_response_bytes",)),
    Case("hook-kwarg-max-response-bytes-nan",
         lambda e: e.hook(max_response_bytes=float("nan")).get_school(e.school_id),
         Config, ("max_response_bytes", "nan")),
    Case("conn-verify-missing-ca-file", on_sandbox(get_school, extra={"verify": "/no/ca.pem"}),
         Config, ("verify", "/no/ca.pem")),
    Case("hook-kwarg-bad-activation-route",
         lambda e: e.hook(activation_route="sideways").get_school(e.school_id),
         Config, ("activation_route", "sideways")),
    # -- hook arguments --------------------------------------------------------------------------
    Case("hook-school-id-not-integer", lambda e: e.hook().get_learner("abc", 1),
         Input, ("school_id",), field="school_id"),
    Case("hook-learner-id-negative", lambda e: e.hook().get_learner(e.school_id, -5),
         Input, ("learner_id",), field="learner_id"),
    Case("hook-school-id-boolean", lambda e: drain(e.hook().iter_learners(True)),
         Input, ("school_id",), field="school_id"),
    Case("hook-unknown-filter", learners(colour="red"), Input, ("colour",), field="colour"),
    Case("hook-school-id-signed", lambda e: e.hook().get_school("+1000"),
         Input, ("school_id",), field="school_id"),
    Case("hook-school-id-float", lambda e: e.hook().get_school(1000.0),
         Input, ("school_id",), field="school_id"),
    Case("hook-school-id-arabic-indic", lambda e: e.hook().get_school("١٠٠٠"),
         Input, ("school_id",), field="school_id"),
    Case("hook-learner-id-superscript", lambda e: e.hook().get_learner(e.school_id, "²"),
         Input, ("learner_id",), field="learner_id"),
    Case("hook-learner-id-huge", lambda e: e.hook().get_learner(e.school_id, 10**30),
         Input, ("learner_id",), field="learner_id"),
    Case("hook-learner-id-5000-digits", lambda e: e.hook().get_learner(e.school_id, "9" * 5000),
         Input, ("learner_id",), field="learner_id"),
    Case("hook-filter-bool-on", learners(all_accounts="on"),
         Input, ("all_accounts", "true, false"), field="all_accounts"),
    Case("hook-date-trailing-garbage", transactions(start_date="2026-01-01Tgarbage"),
         Input, ("start_date",), field="start_date"),
    Case("hook-date-compact", transactions(start_date="20260101"),
         Input, ("start_date",), field="start_date"),
    Case("hook-date-iso-week", transactions(start_date="2026-W01-1"),
         Input, ("start_date",), field="start_date"),
    Case("note-promise-amount-arabic-indic", promise_note(amount_promised="١٥٠.00"),
         Input, ("amount_promised",), field="promise_to_pays[0].amount_promised"),
    Case("hook-filter-bool-maybe", learners(all_accounts="maybe"),
         Input, ("all_accounts",), field="all_accounts"),
    Case("hook-filter-id-not-integer",
         lambda e: drain(e.hook().iter_notes(e.school_id, year="last")),
         Input, ("year",), field="year"),
    Case("hook-filter-enum",
         lambda e: drain(e.hook().iter_promises_to_pay(e.school_id, promise_completed="Maybe")),
         Input, ("promise_completed",), field="promise_completed"),
    Case("hook-malformed-start-date", transactions(start_date="2025-13-40"),
         Input, ("start_date",), field="start_date"),
    Case("hook-end-date-without-start", transactions(end_date=TODAY.isoformat()),
         Input, ("end_date", "start_date"), field="end_date"),
    Case("hook-unknown-resource", lambda e: drain(e.hook().iter_resource("pupils", e.school_id)),
         Input, ("resource", "pupils"), field="resource"),
    Case("hook-state-maybe",
         lambda e: e.hook().set_client_integration_state(e.school_id, 8, "maybe"),
         Input, ("state",), field="state"),
    Case("note-date-out-of-window", create_note(date=IN_3_YEARS), Input, ("date",), field="date"),
    Case("note-date-malformed", create_note(date="31/01/2025"), Input, ("date",), field="date"),
    Case("note-communication-type-required", create_note(communication_type_id=None),
         Input, ("communication_type_id",), field="communication_type_id"),
    Case("note-promise-required", create_note(note_type_id=2),
         Input, ("promise_to_pays",), field="promise_to_pays"),
    Case("note-promise-date-out-of-window", promise_note(date_promised=LAST_YEAR),
         Input, ("date_promised",), field="promise_to_pays[0].date_promised"),
    Case("note-promise-amount-float", promise_note(amount_promised=150.0),
         Input, ("amount_promised",), field="promise_to_pays[0].amount_promised"),
    Case("note-promise-amount-paid", promise_note(amount_paid="10.00"),
         Input, ("amount_paid",), field="promise_to_pays[0].amount_paid"),
    Case("note-promise-completed", promise_note(promise_completed="Yes"),
         Input, ("promise_completed",), field="promise_to_pays[0].promise_completed"),
    Case("note-update-amount-paid",
         lambda e: e.hook().update_note(e.school_id, 1, amount_paid="10.00"),
         Input, ("amount_paid",), field="amount_paid"),
    # -- operators and the sensor ----------------------------------------------------------------
    Case("integrations-state-maybe",
         lambda e: integrations_op(school_id=e.school_id, api_type_id=8, state="maybe"),
         Input, ("state",), field="state"),
    Case("integrations-school-id-text", lambda e: integrations_op(school_id="one thousand"),
         Input, ("school_id",), field="school_id"),
    Case("integrations-desired-not-json",
         lambda e: integrations_op(desired_states="[{school_id: 1000"),
         Input, ("desired_states",), field="desired_states"),
    Case("integrations-desired-missing-state",
         lambda e: integrations_op(desired_states=[{"school_id": e.school_id, "api_type_id": 8}]),
         Input, ("desired_states[0]",), field="desired_states[0]"),
    Case("integrations-desired-state-maybe",
         lambda e: integrations_op(desired_states=[
             {"school_id": e.school_id, "api_type_id": 8, "state": True},
             {"school_id": e.school_id, "api_type_id": 9, "state": "maybe"}]),
         Input, ("desired_states[1].state",), field="desired_states[1].state"),
    Case("integrations-state-y",
         lambda e: integrations_op(school_id=e.school_id, api_type_id=8, state="y"),
         Input, ("state", "true, false"), field="state"),
    Case("integrations-school-id-signed",
         lambda e: integrations_op(school_id="+1000", api_type_id=8, state=True),
         Input, ("school_id",), field="school_id"),
    Case("integrations-desired-deeply-nested",
         lambda e: integrations_op(desired_states="[" * 100_000),
         Input, ("desired_states",), field="desired_states"),
    Case("integrations-desired-float-id",
         lambda e: integrations_op(desired_states=[
             {"school_id": float(e.school_id), "api_type_id": 8, "state": True}]),
         Input, ("desired_states[0].school_id",), field="desired_states[0].school_id"),
    Case("storage-unknown-resource", lambda e: storage_op(e, resource="pupils"),
         Input, ("resource", "pupils"), field="resource"),
    Case("storage-bad-format", lambda e: storage_op(e, format="xml"),
         Input, ("format", "xml"), field="format"),
    Case("storage-school-required", lambda e: storage_op(e, school_id=None),
         Input, ("school_id",), field="school_id"),
    Case("storage-unknown-filter", lambda e: storage_op(e, filters={"colour": "red"}),
         Input, ("colour",), field="colour"),
    Case("storage-relative-path", lambda e: storage_op(e, path="out.csv"),
         Input, ("path",), field="path"),
    Case("note-op-unknown-action", lambda e: note_op(e, action="archive", note_id=1),
         Input, ("action", "archive"), field="action"),
    Case("note-op-promise-required",
         lambda e: note_op(e, accountable_person_id=e.accountable_person_id,
                           date=TODAY.isoformat(), note_type_id=2, communication_type_id=1),
         Input, ("promise_to_pays",), field="promise_to_pays"),
    Case("note-op-delete-without-id", lambda e: note_op(e, action="delete"),
         Input, ("note_id",), field="note_id"),
    Case("note-op-templated-id-text",
         lambda e: note_op(e, accountable_person_id="{{ nothing }}x", date=TODAY.isoformat(),
                           note_type_id=3),
         Input, ("accountable_person_id",), field="accountable_person_id"),
    Case("sensor-until-invalid",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, until="ready"),
         Input, ("until", "ready"), field="until"),
    Case("sensor-school-id-text", lambda e: sensor(school_id="abc", api_type_id=8),
         Input, ("school_id",), field="school_id"),
    Case("sensor-timeout-nan",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, timeout=float("nan")),
         Input, ("timeout",), field="timeout"),
    Case("sensor-timeout-inf",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, timeout=float("inf")),
         Input, ("timeout",), field="timeout"),
    Case("sensor-timeout-huge",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, timeout=10**30),
         Input, ("timeout",), field="timeout"),
    Case("sensor-poke-interval-nan",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, poke_interval=float("nan")),
         Input, ("poke_interval",), field="poke_interval"),
    Case("sensor-poke-interval-zero",
         lambda e: sensor(school_id=e.school_id, api_type_id=8, poke_interval=0),
         Input, ("poke_interval",), field="poke_interval"),
    Case("sensor-school-id-arabic-indic", lambda e: sensor(school_id="١٠٠٠", api_type_id=8),
         Input, ("school_id",), field="school_id"),
    Case("trigger-school-id-bool", lambda e: trigger(school_id=True),
         Input, ("school_id",), field="school_id"),
    Case("trigger-school-id-float", lambda e: trigger(school_id=1000.9),
         Input, ("school_id",), field="school_id"),
    Case("trigger-api-type-superscript", lambda e: trigger(api_type_id="²"),
         Input, ("api_type_id",), field="api_type_id"),
    Case("trigger-school-id-5000-digits", lambda e: trigger(school_id="9" * 5000),
         Input, ("school_id",), field="school_id"),
    Case("trigger-timeout-inf", lambda e: trigger(timeout=float("inf")),
         Input, ("timeout",), field="timeout"),
    Case("trigger-poke-interval-nan", lambda e: trigger(poke_interval=float("nan")),
         Input, ("poke_interval",), field="poke_interval"),
    Case("trigger-deadline-nan", lambda e: trigger(deadline=float("nan")),
         Input, ("deadline",), field="deadline"),
    Case("trigger-soft-fail-text", lambda e: trigger(soft_fail="maybe"),
         Input, ("soft_fail",), field="soft_fail"),
    Case("note-op-text-too-long",
         lambda e: note_op(e, accountable_person_id=e.accountable_person_id,
                           date=TODAY.isoformat(), note_type_id=3, note="x" * 4001),
         Input, ("note", "4000"), field="note"),
    Case("note-op-id-huge",
         lambda e: note_op(e, accountable_person_id=10**30, date=TODAY.isoformat(),
                           note_type_id=3),
         Input, ("accountable_person_id",), field="accountable_person_id"),
    Case("storage-school-id-arabic-indic", lambda e: storage_op(e, school_id="١٠٠٠"),
         Input, ("school_id",), field="school_id"),
    Case("storage-neutralise-formulas-maybe", lambda e: storage_op(e, neutralise_formulas="maybe"),
         Input, ("neutralise_formulas",), field="neutralise_formulas"),
    Case("finance-root-template", finance_root("/srv/{{ conn.d6_default.password }}"),
         Input, ("storage_root",), field="storage_root"),
    Case("finance-root-dot-dot", finance_root("/srv/exports/../../etc"),
         Input, ("storage_root",), field="storage_root"),
    Case("finance-root-scheme", finance_root("ftp://host/x"),
         Input, ("storage_root", "ftp"), field="storage_root"),
    # -- desired-states files (the reconciliation DAG's loader) ----------------------------------
    Case("desired-file-not-yaml", desired_file("bad.yaml", "desired_states: [\n  - {"),
         Input, ("bad.yaml",), field="desired_states_path"),
    Case("desired-file-missing", lambda e: load_desired_states(str(e.tmp_path / "absent.yaml")),
         Input, ("absent.yaml",), field="desired_states_path"),
    Case("desired-file-not-a-list", desired_file("map.json", '{"school_id": 1000}'),
         Input, ("desired_states",), field="desired_states"),
    Case("desired-file-state-maybe",
         desired_file("maybe.yaml", PAIR + "- {school_id: 1001, api_type_id: 8, state: maybe}\n"),
         Input, ("desired_states[1].state",), field="desired_states[1].state"),
    Case("desired-file-negative-school",
         desired_file("neg.json", '[{"school_id": -3, "api_type_id": 8, "state": false}]'),
         Input, ("desired_states[0].school_id",), field="desired_states[0].school_id"),
    Case("desired-file-duplicate-pair", desired_file("dup.yaml", PAIR + PAIR),
         Input, ("desired_states[1]",), field="desired_states[1]"),
    Case("desired-file-outside-folder", lambda e: load_desired_states("/etc/passwd"),
         Input, ("outside the folder",), field="desired_states_path"),
    Case("desired-file-dot-dot", lambda e: load_desired_states("../../etc/shadow"),
         Input, ("outside the folder",), field="desired_states_path"),
    Case("desired-file-alias", desired_file("alias.yaml", "- &a {school_id: 1000}\n- *a\n"),
         Input, ("alias",), field="desired_states_path"),
    Case("desired-file-deep", desired_file("deep.yaml", "[" * 100_000),
         Input, ("nests deeper",), field="desired_states_path"),
    Case("desired-file-id-huge",
         desired_file("huge.json", f'[{{"school_id": {10**30}, "api_type_id": 8, "state": true}}]'),
         Input, ("desired_states[0].school_id",), field="desired_states[0].school_id"),
    # -- what the server (or a proxy in front of it) answers -------------------------------------
    Case("server-html-403", after_fault("html403", get_school),
         D6ForbiddenError, ("403", "firewall"), sends=1, check=lambda err: err.from_firewall),
    Case("server-empty-200", after_fault("empty200", get_school),
         D6ResponseError, ("200", "empty"), sends=None),
    Case("server-truncated-json",
         after_fault("truncated", lambda e: drain(e.hook().iter_schools())),
         D6ResponseError, ("200", "JSON"), sends=None),
    Case("server-route-not-found", after_fault("route_not_found", get_school),
         D6NotFoundError, ("404", "route"), sends=1, check=lambda err: err.route_not_found),
    Case("server-unknown-api-type",  # the v1 route the live service activates through
         lambda e: e.hook(activation_route="v1").set_client_integration_state(e.school_id, 77, True),
         D6ValidationError, ("400", "api_type_id"), sends=1,
         check=lambda err: err.body == {"error": "Bad Request",
                                        "error_description": "The api_type_id is invalid"}),
    Case("server-wrong-password", on_sandbox(get_school, password="Not-the-password-123"),
         D6AuthenticationError, ("401",), sends=1),
    Case("server-school-not-authorised",
         lambda e: drain(e.hook().iter_learners(e.unlicensed_school_id)),
         D6NotAuthorisedError, ("401", "not authorised"), sends=1),
    Case("server-unknown-learner", lambda e: e.hook().get_learner(e.school_id, 987654321),
         D6NotFoundError, ("404", "987654321"), sends=1, check=lambda err: not err.route_not_found),
    # -- Admin+ and Curriculum+ (v1) ---------------------------------------------------------
    Case("v1-absentees-one-date",
         lambda e: e.hook().iter_absentees(e.school_id, from_date=TODAY),
         Input, ("to_date",), field="to_date"),
    Case("v1-discipline-reversed-window",
         lambda e: e.hook().iter_discipline(e.school_id, from_date="2026-03-01", to_date="2026-02-01"),
         Input, ("to_date",), field="to_date"),
    Case("v1-leavers-without-status",
         lambda e: e.hook().iter_adminplus_learners(e.school_id, since="2026-01-01"),
         Input, ("since", "left"), field="since"),
    Case("v1-grade-id-list-text",
         lambda e: e.hook().iter_adminplus_learners(e.school_id, grade_id=["5", "five"]),
         Input, ("grade_id",), field="grade_id"),
    Case("v1-marks-without-learner",
         lambda e: e.hook().iter_learner_subject_marks(e.school_id, None),
         Input, ("learner_id",), field="learner_id"),
    Case("v1-fan-out-workers",
         lambda e: e.hook().iter_school_subject_marks(e.school_id, max_workers=1000),
         Input, ("max_workers",), field="max_workers"),
    Case("v1-lookup-with-school",
         lambda e: e.hook().iter_resource("marital_statuses", e.school_id),
         Input, ("school_id",), field="school_id"),
    Case("server-v1-module-not-activated",
         lambda e: drain(e.hook().iter_learner_subjects(e.school_id)),
         D6NotActivatedError, ("Curriculum+",), sends=1,
         check=lambda err: err.api_type_id == 9),
    Case("server-v1-admin-not-activated",
         lambda e: e.hook().get_school_info(e.unlicensed_school_id),
         D6NotActivatedError, ("Admin+",), sends=1, check=lambda err: err.module == "Admin+ API"),
    Case("server-v1-route-not-found",
         after_fault("route_not_found", lambda e: drain(e.hook().iter_parents(e.school_id))),
         D6NotFoundError, ("404", "route"), sends=1, check=lambda err: err.route_not_found),
    Case("server-v1-empty-200",
         after_fault("empty200", lambda e: drain(e.hook().iter_staff_members(e.school_id))),
         D6ResponseError, ("empty",), sends=1),
    Case("v1-grades-text-id", lambda e: e.hook().get_grades(e.school_id, grade_id="five"),
         Input, ("grade_id",), field="grade_id"),
    Case("v1-school-info-school-text",
         lambda e: e.hook().get_school_info("1000/../1001"),
         Input, ("school_id",), field="school_id"),
    Case("v1-ethnic-group-id-negative", lambda e: e.hook().get_ethnic_groups(-1),
         Input, ("ethnic_group_id",), field="ethnic_group_id"),
    Case("v1-language-id-text", lambda e: e.hook().get_languages("1 OR 1=1"),
         Input, ("language_id",), field="language_id"),
    Case("v1-parent-id-huge",
         lambda e: drain(e.hook().iter_parents(e.school_id, parent_id=2**60)),
         Input, ("parent_id",), field="parent_id"),
    Case("v1-staff-member-id-text",
         lambda e: drain(e.hook().iter_staff_members(e.school_id, staff_member_id="abc")),
         Input, ("staff_member_id",), field="staff_member_id"),
    Case("v1-learner-subjects-learner-text",
         lambda e: drain(e.hook().iter_learner_subjects(e.school_id, learner_id="x")),
         Input, ("learner_id",), field="learner_id"),
    Case("v1-per-term-learner-ids-string",
         lambda e: drain(e.hook().iter_school_subjects_per_term(e.school_id, learner_ids="1,2")),
         Input, ("learner_ids",), field="learner_ids"),
    Case("v1-absentees-february-30",
         lambda e: drain(e.hook().iter_absentees(e.school_id, from_date="2026-02-30",
                                                 to_date="2026-03-02")),
         Input, ("from_date",), field="from_date"),
    # -- d6_school_sync's trigger form: checked before the first d6 request --------------------
    Case("sync-root-template", school_sync_plan(storage_root="/srv/{{ conn.d6_default.password }}"),
         Input, ("storage_root",), field="storage_root"),
    Case("sync-date-not-a-day", school_sync_plan(sync_date="2026-02-30"),
         Input, ("sync_date", "YYYY-MM-DD"), field="sync_date"),
    Case("sync-school-ids-text", school_sync_plan(school_ids=["1000"]),
         Input, ("school_ids",), field="school_ids"),
    Case("sync-pseudonymise-misspelt", school_sync_plan(pseudonymise=["id_numbr"]),
         Input, ("id_number",), field="pseudonymise"),
    Case("sync-drop-not-a-name", school_sync_plan(drop_fields=["{{ x }}"]),
         Input, ("drop_fields",), field="drop_fields"),
    Case("sync-interval-of-a-week",
         school_sync_plan(data_interval=(datetime(2026, 11, 1, 2, tzinfo=UTC),
                                         datetime(2026, 11, 8, 2, tzinfo=UTC))),
         Input, ("7 days", "backfill"), field="data_interval"),
    Case("sync-without-pseudonym-key", school_sync_plan(without_key=True),
         Input, ("d6_pseudonym_key",), field="pseudonym_key_conn_id"),
    Case("shape-array-for-object", shape("array", lambda e: e.hook().get_school(1000)),
         D6ResponseError, ("object",)),
    Case("shape-object-for-collection", shape("object", lambda e: drain(e.hook().iter_schools())),
         D6ResponseError, ("collection",)),
    Case("shape-collection-of-non-objects",
         shape("scalars", lambda e: drain(e.hook().iter_schools())),
         D6ResponseError, ("object",)),
]
# fmt: on


# -- a tiny server for answer shapes the sandbox never gives ---------------------------------------

SHAPES = {
    "array": [{"school_id": 1000, "school_name": "d6+ Primary School"}],
    "object": {"data": {"school_id": 1000}, "meta": {}},
    "scalars": {
        "data": [1000, "d6+ Primary School", None],
        "meta": {"limit": 10, "max_allowed_limit": 50},
    },
}


@pytest.fixture(scope="module")
def shapes_url() -> Iterator[str]:
    """Serve ``/<shape>/api/...`` with a well-formed 200 JSON body of the wrong shape."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def answer(request: web.BaseRequest) -> web.Response:
        shape = request.path.strip("/").split("/")[0]
        return web.json_response(SHAPES.get(shape, {}))

    async def main() -> None:
        runner = web.ServerRunner(web.Server(answer), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield f"http://127.0.0.1:{state['port']}"
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(10)


@pytest.fixture(scope="module")
def bad_input_sandbox() -> Iterator[SandboxHandle]:
    with run_sandbox(password=PASSWORD, schools=6, learners_per_school=20) as handle:
        yield handle


@pytest.fixture
def env(bad_input_sandbox, shapes_url, monkeypatch, tmp_path) -> Env:
    control = bad_input_sandbox.control
    control.reset()
    integrations = control.data("client_integrations")
    licensed = {r["school_id"] for r in integrations if r["activated_by_integrator"] == "Yes"}
    schools = [s["school_id"] for s in control.data("schools")]
    school_id = min(licensed)
    environment = Env(
        sandbox=bad_input_sandbox,
        monkeypatch=monkeypatch,
        tmp_path=tmp_path,
        shapes_url=shapes_url,
        school_id=school_id,
        unlicensed_school_id=next(s for s in schools if s not in licensed),
        accountable_person_id=control.data("accountable_persons", school_id=school_id)[0][
            "accountable_person_id"
        ],
    )
    environment.connect()
    # Desired-states files are read only inside one folder: the case's own.
    monkeypatch.setenv("AIRFLOW__D6__DESIRED_STATES_DIR", str(tmp_path))
    control.clear_requests()
    return environment


def test_the_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_with_a_typed_error(case: Case, env: Env):
    with pytest.raises(D6Error) as caught:
        case.run(env)
    error = caught.value
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    text = str(error)
    for word in case.mentions:
        assert word.lower() in text.lower(), f"{word!r} not in the message: {text}"
    if case.field is not None:
        assert getattr(error, "field", None) == case.field, text
    if case.check is not None:
        assert case.check(error), text
    assert env.sandbox.password not in text and PASSWORD not in repr(error.__dict__)
    sent = env.sandbox.control.requests()
    if case.sends is None:
        assert sent, "the case never reached d6"
    else:
        assert len(sent) == case.sends, f"expected {case.sends} request(s), d6 received {sent}"
