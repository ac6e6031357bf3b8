"""Trigger-form params and d6 answers are attack input: never rendered as Jinja, never a path escape.

Each case runs an example DAG with ``dag.test()`` and a hostile run configuration (or against a d6
that answers hostile records), then checks what a victim would notice: no file outside the
storage root, no connection secret in a path, a header, a log line or XCom, and a refusal that
names the field before any export request is sent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hostile_d6 import run_hostile_d6

from tests.support import parse_dags

PASSWORD = "Inj-pw-5d1f0c9e77"
USERNAME = "inj-user-7c2e"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def dags():
    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def _connect(monkeypatch: pytest.MonkeyPatch, base_url: str, login: str, password: str) -> None:
    conn = {
        "conn_type": "d6",
        "host": base_url,
        "login": login,
        "password": password,
        "extra": {"max_retries": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(conn))


def _states(dag_run) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}


def _task_log_lines(caplog, capfd) -> list[str]:
    """Return every line the run logged (dag.test() writes task logs to stdout)."""
    output = capfd.readouterr()
    text = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    return text.splitlines()


def _export_requests(handle) -> list[dict[str, Any]]:
    return [r for r in handle.control.requests() if "/finplus/" in r["path"]]


HOSTILE_ROOTS = {
    "template-conn-password": "/tmp/d6x/{{ conn.d6_default.password }}",
    "template-statement": "/tmp/d6x/{% for c in 'ab' %}{{ c }}{% endfor %}",
    "template-comment": "/tmp/d6x/{# hidden #}",
    "dot-dot": "/tmp/d6x/../../etc/cron.d",
    "scheme-http": "http://attacker.example/x",
    "scheme-memory": "memory://x",
    "relative": "exports/here",
    "newline": "/tmp/d6x\n[info] forged line",
    "leading-space": " /tmp/d6x",
    "ansi": "/tmp/d6x/\x1b[2Jcleared",
    "non-ascii-slash": "/tmp/d6x\u2215etc",
}


@pytest.mark.parametrize("root", list(HOSTILE_ROOTS.values()), ids=list(HOSTILE_ROOTS))
def test_a_hostile_storage_root_is_refused_before_any_export(
    root, dags, airflow_db, make_sandbox, monkeypatch, tmp_path, caplog, capfd
):
    handle = make_sandbox(username=USERNAME, password="Root-pw-0a9b8c7d", schools=4)
    _connect(monkeypatch, handle.base_url, handle.username, handle.password)
    caplog.set_level(logging.INFO)

    dag_run = dags["d6_finance_export"].test(run_conf={"storage_root": root})

    states = _states(dag_run)
    assert dag_run.state == "failed"
    assert states["plan_exports[-1]"] == "failed", states
    assert _export_requests(handle) == [], "an export ran with a hostile storage root"
    assert not Path("/tmp/d6x").exists() and not Path("/etc/cron.d/learners.jsonl").exists()
    lines = _task_log_lines(caplog, capfd)
    assert any("D6InputError: storage_root:" in line for line in lines), "the field was not named"
    # Nothing rendered the template, so the password never came near a path or a log line.
    assert not [line for line in lines if handle.password in line]
    assert not [line for line in lines if line.startswith("[info] forged")]


def test_the_deployment_confines_storage_roots(
    dags, airflow_db, make_sandbox, monkeypatch, tmp_path
):
    handle = make_sandbox(schools=4, learners_per_school=3)
    _connect(monkeypatch, handle.base_url, handle.username, handle.password)
    allowed = tmp_path / "allowed"
    monkeypatch.setenv("AIRFLOW__D6__EXPORT_STORAGE_ROOTS", f"{tmp_path / 'other'},{allowed}")

    outside = dags["d6_finance_export"].test(run_conf={"storage_root": str(tmp_path / "elsewhere")})
    assert outside.state == "failed" and _export_requests(handle) == []
    assert not (tmp_path / "elsewhere").exists()

    inside = dags["d6_finance_export"].test(run_conf={"storage_root": str(allowed / "nightly")})
    assert inside.state == "success", _states(inside)
    assert list((allowed / "nightly").rglob("learners.jsonl"))


@pytest.mark.parametrize(
    "export_date",
    [
        "{{ conn.d6_default.password }}",
        "2026-01-01Tgarbage",
        "20260101",
        "2026-W01-1",
        " 2026-01-01",
    ],
)
def test_a_hostile_export_date_is_refused(
    export_date, dags, airflow_db, make_sandbox, monkeypatch, tmp_path
):
    from airflow_provider_d6._compat import RUN_CONF_REFUSED

    handle = make_sandbox(schools=4, learners_per_school=3)
    _connect(monkeypatch, handle.base_url, handle.username, handle.password)

    try:
        dag_run = dags["d6_finance_export"].test(
            run_conf={"storage_root": str(tmp_path), "export_date": export_date}
        )
    except RUN_CONF_REFUSED as error:
        # Refused by the trigger form's schema before the run was even created.
        assert "export_date" in str(error)
    else:
        # Or by the plan, which checks the day again before it goes into paths and filters.
        assert dag_run.state == "failed"
        assert _states(dag_run)["plan_exports[-1]"] == "failed"
    assert _export_requests(handle) == []
    assert not list(tmp_path.rglob("*.jsonl"))


def _integration(school_id: Any, name: str = "Hostile High") -> dict[str, Any]:
    return {
        "school_id": school_id,
        "school_name": name,
        "api_type_id": 8,
        "api_type": "Admin+ API",
        "activated_by_integrator": "Yes",
    }


@pytest.mark.parametrize(
    "school_id",
    [
        "{{ 1000 + 7 }}",
        "{{ 1000 + (conn.d6_default.password | length) }}",
        10**30,
        True,
        1007.0,
    ],
    ids=["template", "template-password", "huge", "boolean", "float"],
)
def test_a_school_id_from_d6_is_never_rendered_or_sent_back(
    school_id, dags, airflow_db, monkeypatch, tmp_path
):
    with run_hostile_d6() as d6:
        d6.client_integrations = [_integration(1000), _integration(school_id)]
        _connect(monkeypatch, d6.base_url, USERNAME, PASSWORD)

        dag_run = dags["d6_finance_export"].test(run_conf={"storage_root": str(tmp_path)})

        # The answer is refused as a whole: which schools it really lists cannot be trusted. The
        # hook refuses the id as it reads the answer (the listing task fails), or the plan does.
        assert dag_run.state == "failed"
        states = _states(dag_run)
        assert "failed" in states.values(), states
        assert states["plan_exports[-1]"] in {"failed", "upstream_failed"}, states
        assert d6.school_headers() == []
        assert not list(tmp_path.rglob("*"))


def test_d6_text_cannot_forge_log_lines(dags, airflow_db, monkeypatch, tmp_path, caplog, capfd):
    forged = "Evil\n[info] Wrote 0 of 0 files.\x1b[2K\u2028x"
    caplog.set_level(logging.INFO)
    with run_hostile_d6() as d6:
        d6.client_integrations = [_integration(1000, forged)]
        _connect(monkeypatch, d6.base_url, USERNAME, PASSWORD)

        dag_run = dags["d6_finance_export"].test(run_conf={"storage_root": str(tmp_path)})

    assert dag_run.state == "success", _states(dag_run)
    lines = _task_log_lines(caplog, capfd)
    assert "[info] Wrote 0 of 0 files." not in lines
    assert not [line for line in lines if "\x1b" in line or "\u2028" in line]
    assert any("Evil\\x0a[info] Wrote 0 of 0 files.\\x1b[2K\\u2028x" in line for line in lines)


LITERAL_DAG = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, literal, task

from airflow_provider_d6.operators.storage import D6ToStorageOperator

with DAG("d6_literal_paths", schedule=None, start_date=pendulum.datetime(2025, 1, 1)):

    @task
    def targets(params=None):
        return [{"school_id": 1000, "path": params["path"]}]

    D6ToStorageOperator.partial(task_id="export", resource="learners").expand_kwargs(
        targets().map(lambda target: {**target, "path": literal(target["path"])})
    )
"""


def test_expand_kwargs_paths_passed_as_literals_are_written_verbatim(
    airflow_db, make_sandbox, monkeypatch, tmp_path
):
    """The mapped export writes the literal path; Airflow would render a bare string."""
    from airflow_provider_d6._compat import DagBag

    handle = make_sandbox(schools=2, learners_per_school=2)
    _connect(monkeypatch, handle.base_url, handle.username, handle.password)
    dag_folder = tmp_path / "dags"
    dag_folder.mkdir()
    (dag_folder / "literal_paths.py").write_text(LITERAL_DAG)
    bundles = [
        {
            "name": "d6-literal-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dag_folder)},
        },
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    dag = DagBag(dag_folder=str(dag_folder)).get_dag("d6_literal_paths")
    braces = tmp_path / "{{ 6 * 7 }}"

    dag_run = dag.test(run_conf={"path": f"{braces}/a.jsonl"})

    assert dag_run.state == "success", _states(dag_run)
    assert (braces / "a.jsonl").is_file()
    assert not (tmp_path / "42").exists()
