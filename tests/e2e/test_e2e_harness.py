"""Fast checks of the deployment test's own machinery (the full run is `make e2e`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e import diagnosis, harness
from e2e.airflow_api import render_log_content
from e2e.breakage import BREAKAGES, PACKAGE, make_broken_copy
from e2e.deployment import Deployment
from e2e.worker_identity import DEFAULT_NAME

# Lines as the REST log endpoint rendered them in real failed runs of `make e2e --break ...`.
WORKER_IMPORT_FAILURE = (
    "info Filling up the DagBag from /work/main/dags/d6_onboarding.py\n"
    "error Error loading DAG from d6_onboarding.py: No module named "
    "'d6_e2e_dependency_missing_on_this_worker'\n"
    "error Dag not found during start up\n"
)
DEFER_FAILURE = (
    "info Pausing task as DEFERRED.\n"
    'error Task failed with exception {"error_detail": [{"exc_type": "TypeError", "exc_value": '
    "\"Cannot serialize object of type <class 'requests.sessions.Session'>. Give it a "
    '`serialize()` method"}]}\n'
)
HEALTHY = (
    "info Sekolo sa Lefika Preparatory School (school 1001), Curriculum+ API: "
    "not authorised -> activated. Waited 21.3 s for authorisation; 43.4 s in total.\n"
    "info Task instance in success state\n"
)


@pytest.mark.parametrize(
    ("breakage", "text"),
    [("hook-import", WORKER_IMPORT_FAILURE), ("trigger-serialize", DEFER_FAILURE)],
)
def test_diagnosis_quotes_the_evidence_each_breakage_must_produce(breakage: str, text: str) -> None:
    findings = diagnosis.diagnose({"task log d6_onboarding.x": text})

    assert len(findings) == 1
    assert BREAKAGES[breakage].evidence in findings[0]
    assert findings[0].startswith("task log d6_onboarding.x: ")


def test_diagnosis_of_a_healthy_log_names_no_cause() -> None:
    assert diagnosis.diagnose({"summary": HEALTHY, "worker": "celery@vm ready."}) == []


def test_find_leaks_names_only_the_sources_holding_the_secret() -> None:
    sources = {
        "a.log": "password=S3cret-value here",
        "b.log": "nothing to see",
        "c": "S3cret-value",
    }

    assert diagnosis.find_leaks("S3cret-value", sources) == ["a.log", "c"]
    with pytest.raises(ValueError, match="shorter than 5"):
        diagnosis.find_leaks("abc", sources)


def test_render_log_content_keeps_event_level_and_extras() -> None:
    content = [
        {"event": "Deferring", "level": "info", "timestamp": "t", "school_id": 1001},
        "plain line",
    ]

    assert render_log_content(content) == 'info Deferring {"school_id": 1001}\nplain line'


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_broken_copy_shadows_the_install_and_leaves_the_checkout_alone(
    name: str, tmp_path: Path
) -> None:
    breakage = BREAKAGES[name]
    original = (PACKAGE / breakage.module).read_text()

    folder = make_broken_copy(name, tmp_path)

    assert (PACKAGE / breakage.module).read_text() == original
    assert (folder / PACKAGE.name / breakage.module).read_text().endswith(breakage.appended_code)
    if name == "hook-import":
        # The copy first on PYTHONPATH must win over the editable install, as on the worker.
        env = {**os.environ, "PYTHONPATH": str(folder)}
        result = subprocess.run(
            [sys.executable, "-c", "import airflow_provider_d6.hooks.d6"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0
        assert breakage.evidence in result.stderr


def _deployment(tmp_path: Path) -> Deployment:
    deployment = Deployment(tmp_path, "d6_e2e_0123abcd", 14, tmp_path / "dags")
    deployment.prepare()
    return deployment


def test_environment_is_the_production_shape_and_ignores_the_callers_airflow_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", "leaked")
    deployment = _deployment(tmp_path)

    env = deployment.environment()

    assert "AIRFLOW_CONN_D6_DEFAULT" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow_home")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5432/d6_e2e_0123abcd")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/14"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    port = deployment.api_port
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert "AIRFLOW__CORE__HOSTNAME_CALLABLE" not in env
    passwords = json.loads(deployment.passwords_file.read_text())
    assert passwords == {"admin": deployment.admin_password}


def test_only_the_worker_reports_the_worker_hostname(tmp_path: Path) -> None:
    env = _deployment(tmp_path).worker_environment()

    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "worker_identity.hostname"
    result = subprocess.run(
        [sys.executable, "-c", "import worker_identity; print(worker_identity.hostname())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == DEFAULT_NAME


def test_stop_all_ends_the_process_and_the_children_it_forked(tmp_path: Path) -> None:
    processes = harness.ProcessSet(tmp_path)
    # A parent that forks a long-lived child and ignores SIGTERM, like a stuck component.
    script = "trap '' TERM; sleep 300 & echo child $! ; wait"
    process = processes.start("stubborn", ["bash", "-c", script], dict(os.environ))
    child = int(harness.wait_for_url_line(process, r"child (\d+)", timeout=10))

    processes.stop_all(grace=1)

    assert process.exit_code() is not None
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_database_names_are_fresh_and_nothing_else_is_accepted() -> None:
    assert harness.new_database_name() != harness.new_database_name()
    with pytest.raises(ValueError, match="refusing"):
        harness.drop_database('postgres"; DROP DATABASE test; --')


def test_wait_until_gives_up_with_the_abort_reason() -> None:
    with pytest.raises(harness.E2EFailure, match="worker exited"):
        harness.wait_until(
            "never", lambda: None, timeout=30, interval=0.01, abort=lambda: "worker exited"
        )
