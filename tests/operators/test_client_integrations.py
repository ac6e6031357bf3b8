"""ClientIntegrationsOperator against the sandbox over HTTP: fetch, plan, apply, report."""

from __future__ import annotations

import json

import pytest

from airflow_provider_d6._compat import AirflowException
from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.operators.client_integrations import (
    ClientIntegrationsOperator,
    format_table,
)
from tests.pairs import pair_states

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


def writes(control) -> list[dict]:
    """Return the write requests d6 received."""
    return [request for request in control.requests() if request["method"] in WRITE_METHODS]


def use_connection(monkeypatch, handle, **extra) -> str:
    """Point d6_default at *handle* with the given connection extras."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_DEFAULT",
        json.dumps(
            {
                "conn_type": "d6",
                "host": handle.base_url,
                "login": handle.username,
                "password": handle.password,
                "extra": extra,
            }
        ),
    )
    return "d6_default"


# -- fetch mode ----------------------------------------------------------------------------------


def test_fetch_all_returns_every_authorised_pair(sandbox, d6_conn):
    records = ClientIntegrationsOperator(task_id="fetch").execute({})

    truth = {pair for pair, state in pair_states(sandbox.control).items() if state is not None}
    assert {(r["school_id"], r["api_type_id"]) for r in records} == truth
    assert all(r["school_name"] and r["activated_by_integrator"] in ("Yes", "No") for r in records)
    # A walk over more than one page: the operator followed the cursor to the end.
    assert len(records) > 10


def test_fetch_one_school_returns_only_that_school(sandbox, d6_conn):
    states = pair_states(sandbox.control)
    school = next(s for (s, api), state in states.items() if api == 9 and state is not None)

    records = ClientIntegrationsOperator(task_id="fetch", school_id=school).execute({})

    assert sorted((r["school_id"], r["api_type_id"]) for r in records) == sorted(
        pair for pair, state in states.items() if pair[0] == school and state is not None
    )
    assert len(records) == 2


def test_fetch_one_api_type_returns_only_that_type(sandbox, d6_conn):
    records = ClientIntegrationsOperator(task_id="fetch", api_type_id=9).execute({})

    expected = {p for p, s in pair_states(sandbox.control).items() if p[1] == 9 and s is not None}
    assert {(r["school_id"], r["api_type_id"]) for r in records} == expected
    assert {r["api_type"] for r in records} == {"Curriculum+ API"}


# -- set mode ------------------------------------------------------------------------------------


def test_single_change_activates_the_pair_and_reports_it(sandbox, d6_conn):
    control = sandbox.control
    # Counts the writes of the documented v2 route (the live profile's v1 fallback adds one).
    control.configure(profile="docs")
    school, api = next(p for p, s in pair_states(control).items() if s is False)
    control.clear_requests()

    report = ClientIntegrationsOperator(
        task_id="activate", school_id=school, api_type_id=api, state=True
    ).execute({})

    assert pair_states(control)[(school, api)] is True
    assert report["dry_run"] is False
    assert report["unchanged"] == report["not_authorised"] == report["failed"] == []
    [entry] = report["changed"]
    assert entry["school_id"] == school and entry["api_type_id"] == api
    assert entry["before"] is False and entry["after"] is True
    assert entry["school_name"] == next(
        s["school_name"] for s in control.data("schools") if s["school_id"] == school
    )
    assert len(writes(control)) == 1


def test_bulk_change_over_fifty_pairs_reports_unauthorised_without_writing_them(
    make_sandbox, monkeypatch
):
    # Counts the writes of the documented v2 route (the live profile's v1 fallback adds one).
    handle = make_sandbox(schools=40, learners_per_school=5, profile="docs")
    use_connection(monkeypatch, handle, max_retries=3)
    control = handle.control
    states = pair_states(control)
    listed = {pair: state for pair, state in states.items() if state is not None}
    unlisted = sorted(pair for pair, state in states.items() if state is None)[:6]
    desired = [{"school_id": s, "api_type_id": a, "state": not st} for (s, a), st in listed.items()]
    desired += [{"school_id": s, "api_type_id": a, "state": True} for s, a in unlisted]
    assert len(desired) >= 50
    control.clear_requests()

    report = ClientIntegrationsOperator(
        task_id="bulk", desired_states=desired, fail_on_unauthorised=False
    ).execute({})

    after = pair_states(control)
    assert all(after[pair] is (not state) for pair, state in listed.items())
    assert all(after[pair] is None for pair in unlisted)
    assert [(e["school_id"], e["api_type_id"]) for e in report["changed"]] == sorted(listed)
    assert [(e["school_id"], e["api_type_id"]) for e in report["not_authorised"]] == unlisted
    assert report["failed"] == [] and report["unchanged"] == []
    # One write per differing authorised pair, none for the pairs the schools did not authorise.
    assert len(writes(control)) == len(listed)


def test_unauthorised_pairs_fail_the_task_after_the_others_are_applied(sandbox, d6_conn):
    control = sandbox.control
    states = pair_states(control)
    to_activate = next(p for p, s in states.items() if s is False)
    unlisted = sorted(p for p, s in states.items() if s is None)[:2]
    desired = [
        {"school_id": s, "api_type_id": a, "state": True} for s, a in [to_activate, *unlisted]
    ]

    with pytest.raises(AirflowException) as excinfo:
        ClientIntegrationsOperator(task_id="set", desired_states=desired).execute({})

    message = str(excinfo.value)
    assert "2 pair(s) not authorised" in message
    for school, api in unlisted:
        assert f"school {school}" in message and f"API type {api}" in message
    assert pair_states(control)[to_activate] is True


def test_rerun_with_the_same_input_sends_no_write(sandbox, d6_conn):
    control = sandbox.control
    states = pair_states(control)
    listed = [p for p, s in states.items() if s is not None][:6]
    desired = [{"school_id": s, "api_type_id": a, "state": True} for s, a in listed]
    ClientIntegrationsOperator(task_id="first", desired_states=desired).execute({})
    control.clear_requests()

    report = ClientIntegrationsOperator(task_id="again", desired_states=desired).execute({})

    assert writes(control) == []
    assert report["changed"] == []
    assert [(e["school_id"], e["api_type_id"]) for e in report["unchanged"]] == sorted(listed)
    assert all(e["before"] is True and e["after"] is True for e in report["unchanged"])


def test_dry_run_returns_the_plan_and_sends_no_write(sandbox, d6_conn):
    control = sandbox.control
    before = pair_states(control)
    listed = sorted(p for p, s in before.items() if s is not None)[:5]
    desired = [{"school_id": s, "api_type_id": a, "state": False} for s, a in listed]
    control.clear_requests()

    report = ClientIntegrationsOperator(
        task_id="plan", desired_states=desired, dry_run=True
    ).execute({})

    assert writes(control) == []
    assert pair_states(control) == before
    assert report["dry_run"] is True
    planned = [(e["school_id"], e["api_type_id"]) for e in report["changed"]]
    assert planned == [p for p in listed if before[p] is True]
    assert all(e["before"] is True and e["after"] is False for e in report["changed"])


def test_templated_string_inputs_are_converted(sandbox, d6_conn):
    control = sandbox.control
    school, api = next(p for p, s in pair_states(control).items() if s is True)
    operator = ClientIntegrationsOperator(
        task_id="templated",
        school_id="{{ params.school }}",
        api_type_id="{{ params.api }}",
        state="{{ params.activate }}",
        dry_run="{{ params.dry }}",
    )
    operator.render_template_fields(
        {"params": {"school": school, "api": api, "activate": 0, "dry": "false"}}
    )
    assert (operator.school_id, operator.api_type_id, operator.state) == (
        str(school),
        str(api),
        "0",
    )

    report = operator.execute({})

    assert [(e["school_id"], e["api_type_id"], e["after"]) for e in report["changed"]] == [
        (school, api, False)
    ]
    assert pair_states(control)[(school, api)] is False


def test_desired_states_rendered_as_text_are_parsed(sandbox, d6_conn):
    control = sandbox.control
    school, api = next(p for p, s in pair_states(control).items() if s is False)
    desired = [{"school_id": str(school), "api_type_id": api, "state": "true"}]
    for text in (json.dumps(desired), repr(desired)):  # JSON, and Jinja's Python repr of a param
        report = ClientIntegrationsOperator(
            task_id="text", desired_states=text, dry_run="1"
        ).execute({})
        assert [(e["school_id"], e["after"]) for e in report["changed"]] == [(school, True)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"school_id": "abc"}, "school_id"),
        ({"school_id": 0}, "school_id"),
        ({"api_type_id": True}, "api_type_id"),
        ({"school_id": 1000, "api_type_id": 8, "state": "maybe"}, "state"),
        ({"school_id": 1000, "state": True}, "api_type_id"),
        (
            {"school_id": 1000, "api_type_id": 8, "state": True, "desired_states": []},
            "desired_states",
        ),
        ({"desired_states": "not a list"}, "desired_states"),
        ({"desired_states": {"school_id": 1000}}, "desired_states"),
        ({"desired_states": [{"school_id": 1000, "api_type_id": 8}]}, "desired_states[0]"),
        (
            {"desired_states": [{"school_id": 1000, "api_type_id": 8, "state": True, "x": 1}]},
            "desired_states[0]",
        ),
        (
            {"desired_states": [{"school_id": "x", "api_type_id": 8, "state": True}]},
            "desired_states[0].school_id",
        ),
        (
            {
                "desired_states": [
                    {"school_id": 1000, "api_type_id": 8, "state": True},
                    {"school_id": 1001, "api_type_id": 8, "state": True},
                    {"school_id": "1000", "api_type_id": "8", "state": "false"},
                ]
            },
            "desired_states[2]",
        ),
        ({"school_id": 1000, "api_type_id": 8, "state": 1, "dry_run": "perhaps"}, "dry_run"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_input_is_rejected_before_any_request(sandbox, d6_conn, kwargs, field):
    sandbox.control.clear_requests()

    with pytest.raises(D6InputError) as excinfo:
        ClientIntegrationsOperator(task_id="bad", **kwargs).execute({})

    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(field) and "allowed" in str(excinfo.value)
    assert sandbox.control.requests() == []


def test_conflicting_duplicate_names_both_entries():
    desired = [
        {"school_id": 1000, "api_type_id": 8, "state": True},
        {"school_id": 1000, "api_type_id": 8, "state": False},
    ]
    with pytest.raises(D6InputError, match=r"desired_states\[1\].*desired_states\[0\]"):
        ClientIntegrationsOperator(task_id="dup", desired_states=desired).execute({})


def test_report_is_the_same_whatever_the_completion_order(make_sandbox, monkeypatch):
    reports = []
    for concurrency, faults in ((1, None), (8, {"rate": 0.5, "kinds": ["latency"]})):
        handle = make_sandbox(schools=16, learners_per_school=5)
        use_connection(monkeypatch, handle, max_retries=3)
        if faults:
            # Random extra latency on half the requests shuffles the order writes complete in.
            handle.control.set_faults(**faults)
        states = pair_states(handle.control)
        desired = [
            {"school_id": s, "api_type_id": a, "state": not st if st is not None else True}
            for (s, a), st in states.items()
        ]
        reports.append(
            ClientIntegrationsOperator(
                task_id="order",
                desired_states=desired,
                fail_on_unauthorised=False,
                max_concurrency=concurrency,
            ).execute({})
        )

    assert reports[0] == reports[1]
    keys = [(e["school_id"], e["api_type_id"]) for e in reports[1]["changed"]]
    assert keys == sorted(keys) and len(keys) >= 15


def test_a_failing_pair_does_not_stop_the_others_and_is_listed_with_its_reason(
    sandbox, monkeypatch
):
    use_connection(monkeypatch, sandbox, max_retries=0, activation_route="v1")
    control = sandbox.control
    states = pair_states(control)
    targets = sorted(p for p, s in states.items() if s is False)[:3]
    broken = targets[1]
    # The firewall answers for one school's v1 activation route only; the others go through.
    control.set_faults(
        script=[{"kind": "html403", "times": 5, "path": f"/api/v1/settings/clients/{broken[0]}"}]
    )
    desired = [{"school_id": s, "api_type_id": a, "state": True} for s, a in targets]

    with pytest.raises(AirflowException) as excinfo:
        ClientIntegrationsOperator(task_id="partial", desired_states=desired).execute({})

    message = str(excinfo.value)
    assert "1 pair(s) failed" in message and f"school {broken[0]}" in message
    assert "403" in message
    assert sandbox.password not in message
    after = pair_states(control)
    assert [after[p] for p in targets] == [p != broken for p in targets]


def test_school_withdrawing_between_fetch_and_write_lands_in_not_authorised(
    sandbox, d6_conn, monkeypatch
):
    control = sandbox.control
    school, api = next(p for p, s in pair_states(control).items() if s is False)
    operator = ClientIntegrationsOperator(
        task_id="race",
        desired_states=[{"school_id": school, "api_type_id": api, "state": True}],
        fail_on_unauthorised=False,
    )
    walk = operator.hook.iter_client_integrations

    def walk_then_withdraw(**filters):
        yield from walk(**filters)
        control.deauthorise(school, api)

    monkeypatch.setattr(operator.hook, "iter_client_integrations", walk_then_withdraw)

    report = operator.execute({})

    assert report["changed"] == []
    assert [(e["school_id"], e["api_type_id"], e["before"]) for e in report["not_authorised"]] == [
        (school, api, None)
    ]


def test_log_table_shows_school_api_type_and_transition():
    entries = [
        {
            "school_id": 1000,
            "school_name": "d6+ Primary School",
            "api_type_id": 8,
            "api_type": "Admin+ API",
            "before": False,
            "after": True,
            "desired": True,
        },
        {
            "school_id": 1003,
            "school_name": None,
            "api_type_id": 9,
            "api_type": None,
            "before": None,
            "after": None,
            "desired": True,
        },
    ]
    lines = format_table(entries, planned=True).splitlines()
    assert "School" in lines[0] and "API type" in lines[0]
    assert "1000 d6+ Primary School" in lines[1] and "8 Admin+ API" in lines[1]
    assert "deactivated → activated" in lines[1]
    assert "not listed → activated" in lines[2] and "not authorised" in lines[2]


def test_d6_text_cannot_forge_lines_of_the_plan_table_or_the_failure_message():
    from airflow_provider_d6.operators.client_integrations import _failure_message

    forged = "Evil\n  1000 Fake School  8 Admin+ API  activated → activated\x1b[2K"
    entry = {
        "school_id": 1000,
        "school_name": forged,
        "api_type_id": 8,
        "api_type": "Admin+\rAPI",
        "before": False,
        "after": False,
        "desired": True,
        "error": "HTTP 500: boom\n(0 changed, 5 already in the desired state)",
    }
    table = format_table([entry], planned=True).splitlines()
    message = _failure_message(
        {"changed": [], "unchanged": [], "not_authorised": [], "failed": [entry]},
        fail_on_unauthorised=True,
    ).splitlines()

    # One header and one row; the row shows the escapes, and no line carries a raw control.
    assert len(table) == 2 and "Evil\\x0a  1000 Fake School" in table[1]
    assert "Admin+\\x0dAPI" in table[1] and "boom\\x0a(0 changed" in table[1]
    assert message[-1] == "(0 changed, 0 already in the desired state)"
    assert not [line for line in table + message if "\x1b" in line or "\r" in line]
