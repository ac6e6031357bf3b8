"""D6ToStorageOperator against the sandbox over HTTP, writing to file:// paths in tmp_path."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from airflow_provider_d6.exceptions import D6InputError, D6ServerError
from airflow_provider_d6.hooks._endpoints import V2_RESOURCES
from airflow_provider_d6.hooks.d6 import RESOURCE_FIELDS, D6Hook
from airflow_provider_d6.operators.storage import D6ToStorageOperator, write_atomically
from tests.support import connection_json

FINANCE_SCHOOL = 1000  # seeded with Admin+ API activated, so Finance+ answers for it
WIDE = {"all_accounts": True}  # the ground truth covers every account, not just active ones
# The filters that make an export cover the same records as control.data(resource).
TRUTH_FILTERS: dict[str, dict[str, Any]] = {
    "learners": WIDE,
    "accountable_persons": WIDE,
    "age_analysis": WIDE,
    "financial_transactions": WIDE,
    "notes": {"include_deleted": True},
}
# What identifies a record of each resource (financial transactions carry transaction_id).
KEYS: dict[str, tuple[str, ...]] = {
    "schools": ("school_id",),
    "client_integrations": ("school_id", "api_type_id"),
    "learners": ("learner_id",),
    "accountable_persons": ("accountable_person_id",),
    "notes": ("note_id",),
    "promises_to_pay": ("promise_to_pay_id",),
    "age_analysis": ("accountable_person_id",),
    "financial_transactions": ("transaction_id",),
    "transaction_types": ("id",),
    "transaction_categories": ("id",),
    "communication_types": ("id",),
    "note_types": ("id",),
}
UNSCOPED = ("schools", "client_integrations")


@pytest.fixture
def district(make_sandbox, monkeypatch):
    """A small district (two pages of learners) with d6_default on it, 2 attempts a call."""
    handle = make_sandbox(schools=4, learners_per_school=40)
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(handle, max_retries=2))
    return handle


def read_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    """Parse an exported file back: JSON objects per line, or CSV rows as dicts of strings."""
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def keys_of(records: list[dict[str, Any]], resource: str) -> set[tuple[str, ...]]:
    """Return each record's identifying fields as strings (CSV cells are text)."""
    return {tuple(str(record[name]) for name in KEYS[resource]) for record in records}


def expected_keys(control, resource: str) -> set[tuple[str, ...]]:
    """Return the ids a full export of *resource* must contain, from the sandbox's ground truth."""
    if resource == "schools":
        # Get Schools lists the schools Finance+ answers for: those with an activated integration.
        activated = {
            r["school_id"]
            for r in control.data("client_integrations")
            if r["activated_by_integrator"] == "Yes"
        }
        return {(str(school_id),) for school_id in activated}
    scope = None if resource in UNSCOPED else FINANCE_SCHOOL
    truth = control.data(resource, school_id=scope)
    if resource == "promises_to_pay":
        # Promises of a soft-deleted note are not listed until the note is restored.
        deleted = {
            n["note_id"]
            for n in control.data("notes", school_id=FINANCE_SCHOOL)
            if n["status"] == "Deleted"
        }
        truth = [p for p in truth if p["note_id"] not in deleted]
    return keys_of(truth, resource)


def export(
    tmp_path: Path, resource: str, fmt: str = "jsonl", name: str | None = None, **kwargs: Any
):
    """Run the operator once (as a task would, minus Airflow) and return (result, file)."""
    target = tmp_path / (name or f"{resource}.{fmt}")
    kwargs.setdefault("school_id", None if resource in UNSCOPED else FINANCE_SCHOOL)
    kwargs.setdefault("filters", TRUTH_FILTERS.get(resource))
    op = D6ToStorageOperator(
        task_id=f"export_{resource}",
        resource=resource,
        path=f"file://{target}",
        format=fmt,
        **kwargs,
    )
    return op.execute(context={}), target


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("resource", sorted(V2_RESOURCES))  # v1 ones: test_adminplus*
def test_every_resource_exports_exactly_the_sandbox_records(district, tmp_path, resource, fmt):
    result, target = export(tmp_path, resource, fmt)

    records = read_records(target, fmt)
    assert keys_of(records, resource) == expected_keys(district.control, resource)
    assert len(records) == result["records"] > 0
    content = target.read_bytes()
    assert result["bytes"] == len(content)
    assert result["sha256"] == hashlib.sha256(content).hexdigest()
    assert result["path"] == f"file://{target}"
    assert (result["resource"], result["format"], result["skipped"]) == (resource, fmt, False)
    assert result["school_id"] == (None if resource in UNSCOPED else FINANCE_SCHOOL)
    json.dumps(result)  # XCom-safe
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_jsonl_is_one_compact_object_per_line_with_types_kept(district, tmp_path):
    _, target = export(tmp_path, "learners")

    lines = target.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert lines[0] == json.dumps(first, separators=(",", ":"), ensure_ascii=False)
    assert isinstance(first["learner_id"], int) and isinstance(first["debtor_code"], str)


def test_csv_header_is_stable_and_undocumented_fields_go_to_extra(district, tmp_path):
    _, target = export(tmp_path, "learners", "csv")

    with target.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == [*RESOURCE_FIELDS["learners"], "extra"]
    rows = read_records(target, "csv")
    truth = {
        str(r["learner_id"]): r for r in district.control.data("learners", school_id=FINANCE_SCHOOL)
    }
    for row in rows:
        # "status" is not a documented learner field: kept as JSON in the extra column, not dropped.
        assert json.loads(row["extra"]) == {"status": truth[row["learner_id"]]["status"]}
        assert row["last_name"] == truth[row["learner_id"]]["last_name"]


def test_csv_keeps_the_same_header_when_no_record_has_data(district, tmp_path):
    # A learner id that does not exist: zero records, still a header-only, parseable file.
    result, target = export(tmp_path, "learners", "csv", filters={"learner_id": 1})

    assert result["records"] == 0
    assert target.read_text(encoding="utf-8").splitlines() == [
        ",".join([*RESOURCE_FIELDS["learners"], "extra"])
    ]


def test_csv_writes_nested_values_as_json_text(district, tmp_path):
    _, target = export(tmp_path, "learners", "csv", filters={**WIDE, "include_parents": True})

    rows = read_records(target, "csv")
    extras = [json.loads(row["extra"]) for row in rows]
    assert any(isinstance(extra.get("parents"), list) and extra["parents"] for extra in extras)


def test_learners_over_many_pages_match_the_sandbox_exactly(make_sandbox, monkeypatch, tmp_path):
    handle = make_sandbox(schools=1, learners_per_school=730)
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(handle))

    result, target = export(tmp_path, "learners")

    truth = [r["learner_id"] for r in handle.control.data("learners", school_id=FINANCE_SCHOOL)]
    lines = target.read_text(encoding="utf-8").splitlines()
    assert len(lines) == result["records"] == len(truth) == 730
    assert [json.loads(line)["learner_id"] for line in lines] == truth  # every id, in d6's order
    pages = [r for r in handle.control.requests() if r["path"].endswith("/learners")]
    assert len(pages) > 10


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_memory_stays_flat_however_many_records_stream_through(tmp_path, fmt):
    def learners(count: int) -> Iterator[dict[str, Any]]:
        for i in range(count):
            yield {
                "learner_id": i,
                "first_name": "Naledi Nomvula Kagiso Anika",
                "last_name": "Molefe-Mahlangu-Venter-Jacobs",
                "debtor_code": f"D{i:08d}",
                "status": "Current",
            }

    tracemalloc.start()
    try:
        result = write_atomically(
            ObjectStoragePath(f"file://{tmp_path}/learners.{fmt}"),
            learners(20_000),
            format=fmt,
            fields=RESOURCE_FIELDS["learners"],
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result["records"] == 20_000
    # Holding the records (or the file) in memory would cost several times the file size.
    assert result["bytes"] > 4 * peak
    assert peak < 512 * 1024


def arm_fault_after(op: D6ToStorageOperator, control, records: int, kind: str) -> None:
    """Make d6 fail every request once *records* records have been streamed (a mid-export fault)."""
    real = op.hook.iter_resource

    def iter_resource(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for count, record in enumerate(real(*args, **kwargs), start=1):
            yield record
            if count == records:
                control.set_faults(script=[{"kind": kind, "times": 50}], retry_after="0")

    op.hook.iter_resource = iter_resource  # type: ignore[method-assign]


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_fault_mid_export_leaves_no_file_and_no_temporary(district, tmp_path, kind):
    target = tmp_path / "daily" / "learners.jsonl"
    op = D6ToStorageOperator(
        task_id="export", resource="learners", school_id=FINANCE_SCHOOL, path=f"file://{target}"
    )
    arm_fault_after(op, district.control, 5, kind)

    with pytest.raises(Exception) as caught:
        op.execute(context={})

    assert "D6" in type(caught.value).__name__
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    faulted = [r for r in district.control.requests() if r["fault"]]
    assert faulted and all(r["path"].endswith("/learners") for r in faulted)


# Writes the learners file through write_atomically, says so once the temporary file holds data,
# then waits forever mid-export, as a task does while d6 is slow.
KILLED_WRITER = """
import sys, time
from airflow.sdk import ObjectStoragePath
from airflow_provider_d6.operators.storage import write_atomically

def records():
    for number in range(20000):
        yield {"learner_id": number, "note": "x" * 20}
    print("streaming", flush=True)
    time.sleep(600)

write_atomically(ObjectStoragePath("file://" + sys.argv[1]), records(), format="jsonl", fields=[])
"""


def test_a_retry_removes_the_temporary_file_a_killed_attempt_left(district, tmp_path):
    target = tmp_path / "daily" / "learners.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "streaming"
    finally:
        writer.kill()  # SIGKILL: no cleanup of the writer runs, as when a worker is lost
        writer.wait()
    left = [p.name for p in target.parent.iterdir()]
    assert len(left) == 1 and left[0].startswith("learners.jsonl.tmp-") and not target.exists()
    # Someone else's file and a name that only looks alike stay.
    (target.parent / "notes.jsonl.tmp-0123456789abcdef0123456789abcdef").write_text("{}")
    (target.parent / "learners.jsonl.tmp-mine").write_text("{}")

    op = D6ToStorageOperator(
        task_id="export",
        resource="learners",
        school_id=FINANCE_SCHOOL,
        filters=WIDE,
        path=str(target),
    )
    result = op.execute(context={})

    assert sorted(p.name for p in target.parent.iterdir()) == [
        "learners.jsonl",
        "learners.jsonl.tmp-mine",
        "notes.jsonl.tmp-0123456789abcdef0123456789abcdef",
    ]
    records = read_records(target, "jsonl")
    assert result["records"] == len(records)
    assert keys_of(records, "learners") == expected_keys(district.control, "learners")


def test_fault_mid_export_keeps_the_previous_good_file(district, tmp_path):
    _, target = export(tmp_path, "learners")
    good = target.read_bytes()
    mtime = target.stat().st_mtime_ns
    op = D6ToStorageOperator(
        task_id="export",
        resource="learners",
        school_id=FINANCE_SCHOOL,
        filters=WIDE,
        path=str(target),
    )
    arm_fault_after(op, district.control, 5, "500")

    with pytest.raises(D6ServerError):
        op.execute(context={})

    assert target.read_bytes() == good and target.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_skip_if_unchanged_leaves_the_file_and_its_mtime_untouched(district, tmp_path):
    first, target = export(tmp_path, "learners", skip_if_unchanged=True)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))  # a distinctive, old mtime

    second, _ = export(tmp_path, "learners", skip_if_unchanged=True)

    assert first["skipped"] is False and second["skipped"] is True
    assert second["sha256"] == first["sha256"] and second["records"] == first["records"]
    assert target.stat().st_mtime_ns == 1_000_000_000
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_skip_if_unchanged_still_writes_when_the_data_changed(district, tmp_path):
    first, target = export(tmp_path, "notes", skip_if_unchanged=True)
    # A note created through the API changes the export: it must replace the file.
    person = district.control.data("accountable_persons", school_id=FINANCE_SCHOOL)[0][
        "accountable_person_id"
    ]
    D6Hook().create_note(
        FINANCE_SCHOOL,
        accountable_person_id=person,
        date=date.today().isoformat(),
        note_type_id=3,
        note="changed",
    )

    second, _ = export(tmp_path, "notes", skip_if_unchanged=True)

    assert second["skipped"] is False and second["records"] == first["records"] + 1
    assert second["sha256"] != first["sha256"]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == second["sha256"]


def test_plain_absolute_path_and_object_storage_path_are_accepted(district, tmp_path):
    plain = tmp_path / "plain.jsonl"
    D6ToStorageOperator(
        task_id="a", resource="note_types", school_id=FINANCE_SCHOOL, path=str(plain)
    ).execute({})
    wrapped = tmp_path / "wrapped.csv"
    D6ToStorageOperator(
        task_id="b",
        resource="note_types",
        school_id=FINANCE_SCHOOL,
        format="csv",
        path=ObjectStoragePath(f"file://{wrapped}"),
    ).execute({})

    assert len(plain.read_text().splitlines()) == 3
    assert read_records(wrapped, "csv")[0] == {"id": "1", "name": "Text note", "extra": ""}


def test_a_static_path_is_declared_as_the_asset_outlet(tmp_path):
    op = D6ToStorageOperator(
        task_id="export", resource="learners", school_id=1000, path=f"{tmp_path}/learners.jsonl"
    )

    assert op.outlets == [Asset(uri=f"file://{tmp_path}/learners.jsonl")]


def test_an_s3_path_outlet_drops_the_storage_conn_id():
    op = D6ToStorageOperator(
        task_id="export",
        resource="learners",
        school_id=1000,
        path="s3://aws_prod@bucket/d6/learners.jsonl",
    )

    assert [o.uri for o in op.outlets] == ["s3://bucket/d6/learners.jsonl"]


def test_a_templated_path_is_declared_as_an_alias_and_an_explicit_asset_wins(tmp_path):
    template = "file:///data/d6/{{ ds }}/{{ params.school_id }}/learners.jsonl"
    aliased = D6ToStorageOperator(task_id="a", resource="learners", school_id=1000, path=template)
    chosen = D6ToStorageOperator(
        task_id="b",
        resource="learners",
        school_id=1000,
        path=template,
        asset="file:///data/d6/learners",
    )

    assert aliased.outlets == [AssetAlias(name=template)]
    assert chosen.outlets == [Asset(uri="file:///data/d6/learners")]


def test_the_run_attaches_the_rendered_file_and_summary_to_the_outlets(district, tmp_path):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    template = f"file://{tmp_path}/{{{{ params.day }}}}/notes.jsonl"
    alias = D6ToStorageOperator(
        task_id="a", resource="notes", school_id=FINANCE_SCHOOL, path=template
    )
    alias.render_template_fields({"params": {"day": "2026-01-02"}})
    events = OutletEventAccessors()

    result = alias.execute({"outlet_events": events})

    (added,) = events[AssetAlias(name=template)].asset_alias_events
    assert added.dest_asset_key.uri == f"file://{tmp_path}/2026-01-02/notes.jsonl"
    assert added.extra["sha256"] == result["sha256"] and added.extra["records"] == result["records"]

    static = D6ToStorageOperator(
        task_id="b", resource="notes", school_id=FINANCE_SCHOOL, path=str(tmp_path / "n.jsonl")
    )
    events = OutletEventAccessors()
    result = static.execute({"outlet_events": events})
    assert events[static.outlets[0]].extra == {
        k: result[k] for k in ("path", "records", "bytes", "sha256", "skipped")
    }


def test_templated_arguments_are_rendered_and_coerced(district, tmp_path):
    op = D6ToStorageOperator(
        task_id="export",
        resource="{{ params.resource }}",
        school_id="{{ params.school_id }}",
        filters={"learner_id": "{{ params.learner_id }}"},
        path=f"file://{tmp_path}/{{{{ params.school_id }}}}/{{{{ params.resource }}}}.jsonl",
    )
    learner = district.control.data("learners", school_id=FINANCE_SCHOOL)[3]["learner_id"]
    op.render_template_fields(
        {"params": {"resource": "learners", "school_id": "1000", "learner_id": str(learner)}}
    )

    result = op.execute({})

    assert result["school_id"] == 1000 and result["records"] == 1
    assert json.loads((tmp_path / "1000" / "learners.jsonl").read_text())["learner_id"] == learner


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resource": "pupils"}, "resource"),
        ({"resource": "learners", "school_id": None}, "school_id"),
        ({"resource": "learners", "school_id": "abc"}, "school_id"),
        ({"resource": "learners", "filters": {"colour": "red"}}, "colour"),
        ({"resource": "learners", "filters": {"learner_id": "x"}}, "learner_id"),
        ({"resource": "learners", "filters": "all_accounts"}, "filters"),
        ({"resource": "note_types", "filters": {"reverse_order": True}}, "reverse_order"),
        ({"resource": "client_integrations", "filters": {"school_id": 1000}}, "filters"),
    ],
)
def test_bad_inputs_are_rejected_before_any_request(district, tmp_path, kwargs, field):
    kwargs.setdefault("school_id", FINANCE_SCHOOL)
    op = D6ToStorageOperator(task_id="export", path="file:///nowhere/x.jsonl", resource="{{ r }}")
    for name, value in kwargs.items():
        setattr(op, name, value)  # as if rendered from templates

    with pytest.raises(D6InputError) as caught:
        op.execute({})

    assert caught.value.field == field
    assert district.control.requests() == []
    assert not Path("/nowhere").exists()


def test_unknown_resource_error_names_the_allowed_values():
    with pytest.raises(D6InputError) as caught:
        D6ToStorageOperator(
            task_id="export", resource="pupils", school_id=1000, path="/tmp/x.jsonl"
        )

    assert caught.value.field == "resource"
    assert all(name in str(caught.value) for name in RESOURCE_FIELDS)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "parquet"}, "format"),
        ({"path": "relative/learners.jsonl"}, "path"),
        ({"path": "file:///data/d6/"}, "path"),
        ({"asset": 42}, "asset"),
    ],
)
def test_bad_static_arguments_fail_when_the_dag_is_parsed(kwargs, field):
    kwargs = {
        "resource": "learners",
        "school_id": 1000,
        "path": "/data/d6/learners.jsonl",
        **kwargs,
    }

    with pytest.raises(D6InputError) as caught:
        D6ToStorageOperator(task_id="export", **kwargs)

    assert caught.value.field == field


def test_result_and_rendered_fields_carry_no_credentials(district, tmp_path):
    op = D6ToStorageOperator(
        task_id="export",
        resource="learners",
        school_id=FINANCE_SCHOOL,
        path=str(tmp_path / "l.csv"),
        format="csv",
    )
    result = op.execute({})

    text = json.dumps(result) + repr(op) + io.StringIO(str(vars(op))).getvalue()
    assert district.password not in text


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("/srv/project/.airflow/demo/data", "file:///srv/project/.airflow/demo/data"),
        ("s3://aws_default@bucket/.exports", "s3://aws_default@bucket/.exports"),
    ],
)
def test_a_storage_root_may_hold_a_hidden_directory(root, expected):
    from airflow_provider_d6.operators.storage import check_storage_root

    # A project-local Airflow home (.airflow/...) is an ordinary place to export to.
    assert check_storage_root(root) == expected


@pytest.mark.parametrize("root", ["/srv/./data", "/srv/../etc", "/srv/.airflow/../../etc"])
def test_dot_segments_of_a_storage_root_are_refused(root):
    from airflow_provider_d6.operators.storage import check_storage_root

    with pytest.raises(D6InputError, match="storage_root"):
        check_storage_root(root)
