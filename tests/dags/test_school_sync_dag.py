"""d6_school_sync on a sandbox: snapshots and days per school, skips with reasons, pseudonyms."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pendulum
import pytest
from dag_helpers import task_states, xcom

from airflow_provider_d6.operators.privacy import D6_SENSITIVE_FIELDS, PSEUDONYM_PREFIX

pytestmark = pytest.mark.slow

TZ = "Africa/Johannesburg"
# The sandbox's seeded states with four schools: 1000 has Admin+ activated and Curriculum+ only
# authorised, 1001 Admin+ authorised only, 1002 both activated, 1003 nothing.
ADMIN_ONLY, PENDING, BOTH = 1000, 1001, 1002
SYNCED = (ADMIN_ONLY, BOTH)
KEY = "a-long-random-pseudonym-key-for-tests"
ADMIN_SNAPSHOTS = ("school_info", "grades", "adminplus_learners", "parents", "staff_members")
CURRICULUM = ("learner_subjects", "learner_subjects_per_term", "learner_subject_marks")
DAILY = {"absentees": "absent_date", "discipline": "discipline_date"}
# Three consecutive school days (Tuesday to Thursday) on which the seeded learners of the two
# synced schools have absences and discipline entries.
DAYS = ("2026-11-03", "2026-11-04", "2026-11-05")


@pytest.fixture
def schools(make_sandbox, monkeypatch):
    """Four small schools as ``d6_default``, and the pseudonym key as ``d6_pseudonym_key``."""
    handle = make_sandbox(schools=4, learners_per_school=12)
    connection = {
        "conn_type": "d6",
        "host": handle.base_url,
        "login": handle.username,
        "password": handle.password,
        "extra": {"max_retries": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_PSEUDONYM_KEY", json.dumps({"conn_type": "generic", "password": KEY})
    )
    return handle


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _files(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def _run_for_day(dag, day: str, root):
    """Run the DAG the way a backfill run of *day* does: with that day as its data interval.

    ``dag.test(logical_date=...)`` infers a manual run's data interval as the schedule's
    interval that ends at the logical date, so the run for *day* is the one at 04:00 the day after.
    """
    after = dt.date.fromisoformat(day) + dt.timedelta(days=1)
    logical = pendulum.datetime(after.year, after.month, after.day, 4, tz=TZ)
    return dag.test(logical_date=logical, run_conf={"storage_root": str(root)})


def test_backfill_writes_each_day_once_and_reruns_replace(dagbag, airflow_db, schools, tmp_path):
    from airflow_provider_d6.hooks.d6 import D6Hook

    dag = dagbag.dags["d6_school_sync"]
    runs = [_run_for_day(dag, day, tmp_path) for day in DAYS]
    for run in runs:
        assert run.state == "success", task_states(run)
    assert [xcom(run, "summary")["day"] for run in runs] == list(DAYS)

    # Only each run's own day was asked for.
    asked = sorted(
        {
            (r["query"].get("from_date"), r["query"].get("to_date"))
            for r in schools.control.requests()
            if "/learnerabsentees/" in r["path"] or "/learnerdiscipline/" in r["path"]
        }
    )
    assert asked == [(day, day) for day in DAYS]

    hook = D6Hook()
    total = 0
    for school in SYNCED:
        for resource, date_field in DAILY.items():
            folder = tmp_path / str(school) / resource
            assert sorted(p.name for p in folder.iterdir()) == [f"{day}.jsonl" for day in DAYS]
            written = []
            for day in DAYS:
                rows = _read(folder / f"{day}.jsonl")
                assert {row[date_field] for row in rows} <= {day}, f"{resource} {day}"
                written += rows
            truth = list(hook.iter_resource(resource, school, from_date=DAYS[0], to_date=DAYS[-1]))
            # Every row of the three days, each exactly once.
            assert sorted(row["id"] for row in written) == sorted(row["id"] for row in truth)
            assert len({row["id"] for row in written}) == len(written)
            total += len(written)
    assert total > 0, "the chosen days have no absences or discipline entries to sync"

    # Re-running a day replaces its files: the same rows, nothing appended, no new file.
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    again = _run_for_day(dag, DAYS[1], tmp_path)
    assert again.state == "success", task_states(again)
    after = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    assert after == before
    # The snapshots had not changed since the first run: their files were left as they were.
    snapshot = next(
        result for result in _results(again) if result["path"].endswith("/parents.jsonl")
    )
    assert snapshot["skipped"] is True


def _results(dag_run) -> list[dict]:
    """Return the results of a run's successful exports."""
    return [
        ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
        for ti in dag_run.get_task_instances()
        if ti.task_id.startswith("export_") and ti.state == "success"
    ]


def _fields(value, names):
    """Yield the values of the fields called *names* anywhere in *value*."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in names:
                yield item
            else:
                yield from _fields(item, names)
    elif isinstance(value, list):
        for item in value:
            yield from _fields(item, names)


def test_a_module_not_activated_is_skipped_with_the_reason(dagbag, airflow_db, schools, tmp_path):
    from airflow_provider_d6.hooks.d6 import D6Hook

    # Curriculum+ of school 1002 is deactivated after the plan listed it as activated: d6 then
    # answers "Integration not activated", which skips the school's Curriculum+ exports too.
    stop = threading.Event()

    def deactivate_after_listing() -> None:
        while not stop.wait(0.05):
            if any(
                r["path"].endswith("/settings/clientintegrations")
                for r in schools.control.requests()
            ):
                D6Hook().set_client_integration_state(BOTH, 9, False)
                return

    watcher = threading.Thread(target=deactivate_after_listing, daemon=True)
    watcher.start()
    try:
        dag_run = dagbag.dags["d6_school_sync"].test(
            run_conf={"storage_root": str(tmp_path), "sync_date": DAYS[0]}
        )
    finally:
        stop.set()
        watcher.join()

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    # School 1000 (index 0) has Curriculum+ authorised, not activated: planned as a skip.
    # School 1002 (index 1) lost it mid-run: skipped on d6's answer.
    for resource in CURRICULUM:
        assert states[(f"export_{resource}", 0)] == "skipped"
        assert states[(f"export_{resource}", 1)] == "skipped"
    for resource in (*ADMIN_SNAPSHOTS, *DAILY):
        assert states[(f"export_{resource}", 0)] == states[(f"export_{resource}", 1)] == "success"
    summary = xcom(dag_run, "summary")
    reasons = {(s["task_id"], s["school_id"]): s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {(f"export_{r}", school) for r in CURRICULUM for school in SYNCED}
    assert reasons[("export_learner_subjects", ADMIN_ONLY)] == (
        "Curriculum+ API is authorised but not activated"
    )
    assert reasons[("export_learner_subjects", BOTH)].startswith(
        "Curriculum+ API is not activated, d6 answered: "
    )
    assert "activate the Curriculum+ API" in reasons[("export_learner_subjects", BOTH)]
    assert not any(name.startswith(f"{ADMIN_ONLY}/learner_") for name in _files(tmp_path))
    # Nothing was asked of a school that has activated neither module.
    assert not any(str(PENDING) in r["path"] for r in schools.control.requests())
    assert summary["schools"] == list(SYNCED)


def test_personal_fields_are_pseudonymised_stably_and_never_written_raw(
    dagbag, airflow_db, schools, tmp_path
):
    from airflow_provider_d6.hooks.d6 import D6Hook

    dag = dagbag.dags["d6_school_sync"]
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    conf = {"sync_date": DAYS[0], "pseudonymise": ["first_name", "id_number"]}
    first = dag.test(run_conf={**conf, "storage_root": str(first_root)})
    second = dag.test(run_conf={**conf, "storage_root": str(second_root)})
    assert first.state == second.state == "success"
    summary = xcom(first, "summary")
    # The documented list always applies; the form added first_name.
    assert summary["pseudonymised_fields"] == [*D6_SENSITIVE_FIELDS, "first_name"]
    assert summary["dropped_fields"] == ["ethnic_group", "ethnic_group_id"]

    # Two runs, two sets of files: the same pseudonyms, so joins across runs still work.
    assert _files(first_root) == _files(second_root)
    for name in _files(first_root):
        assert (first_root / name).read_bytes() == (second_root / name).read_bytes(), name

    # Every personal field in every file holds a pseudonym (or d6's empty value), at any depth.
    protected = {*D6_SENSITIVE_FIELDS, "first_name"}
    seen = 0
    for name in _files(first_root):
        for record in _read(first_root / name):
            assert "ethnic_group" not in record and "ethnic_group_id" not in record, name
            for value in _fields(record, protected):
                seen += 1
                assert value in ("", None) or str(value).startswith(PSEUDONYM_PREFIX), name
    assert seen > 50

    # No raw value of an identifying field is anywhere in the files, whatever the field name.
    hook = D6Hook()
    raw: set[str] = set()
    for school in SYNCED:
        for resource in ("adminplus_learners", "parents", "staff_members", "school_info"):
            for record in hook.iter_resource(resource, school):
                for field in ("id_number", "email_address", "mobile_number", "postal_address"):
                    value = record.get(field)
                    if isinstance(value, str) and len(value) >= 6:
                        raw.add(value)
    assert len(raw) > 20
    # Learner ids are kept: the files still join to each other.
    assert {row["learner_id"] for row in _read(first_root / str(BOTH) / "learner_subjects.jsonl")}
    for name in _files(first_root):
        text = (first_root / name).read_text(encoding="utf-8")
        # JSON escapes "\r\n" in addresses, so compare with the escaped form too.
        leaked = [v for v in raw if v in text or json.dumps(v)[1:-1] in text]
        assert not leaked, f"{name} holds raw personal values: {leaked[:3]}"


def test_an_onboarded_school_is_synced_at_once_from_the_activation_event(
    dagbag, airflow_db, schools, tmp_path
):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel, association_table
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, event, insert, select, update

    from airflow_provider_d6.assets import D6_SCHOOL_ACTIVATED

    def activation_events(session) -> list:
        return list(
            session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == D6_SCHOOL_ACTIVATED.uri)
                .order_by(AssetEvent.id)
            )
        )

    onboarding = dagbag.dags["d6_onboarding"]
    conf = {"school_id": ADMIN_ONLY, "api_type_id": 9}
    # A dry run activates nothing, so it announces nothing. (It also puts every DAG of the
    # folder in the metadata database, where the sync is unpaused as an operator would.)
    dry = onboarding.test(run_conf={**conf, "dry_run": True})
    assert dry.state == "success", task_states(dry)
    assert task_states(dry)[("announce_activation", -1)] == "skipped"
    with create_session() as session:
        before = {e.id for e in activation_events(session)}
        session.execute(
            update(DagModel).where(DagModel.dag_id == "d6_school_sync").values(is_paused=False)
        )
        session.execute(delete(AssetDagRunQueue))

    activated = onboarding.test(run_conf={**conf, "dry_run": False})
    assert activated.state == "success", task_states(activated)
    with create_session() as session:
        events = [e for e in activation_events(session) if e.id not in before]
        assert [(e.extra, e.source_dag_id, e.source_task_id) for e in events] == [
            (
                {"school_id": ADMIN_ONLY, "api_type_id": 9},
                "d6_onboarding",
                "announce_activation",
            )
        ]
        # The scheduler's queue now holds a run of the sync for the event.
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
        assert "d6_school_sync" in queued
        event_ids = [e.id for e in events]

    # The scheduler turns the queue into a run that consumes the events; dag.test() makes the
    # run itself, so the events are attached to it as the scheduler attaches them, when it is
    # created. The tasks then read them through Airflow's execution API.
    def consume(mapper, connection, target) -> None:
        if target.dag_id == "d6_school_sync":
            for event_id in event_ids:
                connection.execute(
                    insert(association_table).values(dag_run_id=target.id, event_id=event_id)
                )

    schools.control.clear_requests()
    event.listen(DagRun, "after_insert", consume)
    try:
        sync = dagbag.dags["d6_school_sync"].test(run_conf={"storage_root": str(tmp_path)})
    finally:
        event.remove(DagRun, "after_insert", consume)

    assert sync.state == "success", task_states(sync)
    summary = xcom(sync, "summary")
    assert summary["schools"] == [ADMIN_ONLY]
    assert summary["skipped"] == []  # Curriculum+ is activated now
    names = _files(tmp_path)
    assert f"{ADMIN_ONLY}/learner_subject_marks.jsonl" in names
    assert not any(name.startswith(f"{BOTH}/") for name in names)
    assert not any(f"/{BOTH}" in r["path"] for r in schools.control.requests())
    marks = _read(tmp_path / str(ADMIN_ONLY) / "learner_subject_marks.jsonl")
    assert marks and {row["school_id"] for row in marks} == {ADMIN_ONLY}


def _dag_module():
    import importlib.util

    from dag_helpers import DAGS_DIR

    spec = importlib.util.spec_from_file_location(
        "d6_school_sync_dag", DAGS_DIR / "d6_school_sync.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("run_type", ["enum", "value"])
def test_an_asset_triggered_run_syncs_the_day_that_just_closed(run_type):
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    module = _dag_module()
    kind = DagRunType.ASSET_TRIGGERED
    dag_run = SimpleNamespace(run_type=kind if run_type == "enum" else kind.value)
    # Whatever interval Airflow gives an Asset-triggered run (the events' timestamps), the day
    # synced is yesterday in Johannesburg, as the next nightly run would have it.
    events = pendulum.datetime(2026, 3, 1, 9, tz="UTC"), pendulum.datetime(2026, 3, 9, 9, tz="UTC")
    context = {"dag_run": dag_run, "data_interval_start": events[0], "data_interval_end": events[1]}
    yesterday = pendulum.now(TZ).subtract(days=1).to_date_string()
    assert module._sync_day({}, context) == yesterday
    # A scheduled run syncs its interval's day; the form's sync_date wins over both.
    nightly = {
        "dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED),
        "data_interval_start": pendulum.datetime(2026, 3, 1, 4, tz=TZ),
        "data_interval_end": pendulum.datetime(2026, 3, 2, 4, tz=TZ),
    }
    assert module._sync_day({}, nightly) == "2026-03-01"
    assert module._sync_day({"sync_date": "2024-02-29"}, nightly) == "2024-02-29"
