"""Pseudonymising and dropping personal fields in D6ToStorageOperator exports, over real HTTP."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.operators.privacy import (
    D6_SENSITIVE_FIELDS,
    PSEUDONYM_PREFIX,
    RecordPrivacy,
)
from airflow_provider_d6.operators.storage import D6ToStorageOperator
from tests.support import connection_json

SCHOOL = 1000  # Admin+ activated in the seeded district, so Finance+ answers for it
KEY_CONN = "d6_pseudonym_key"
# A sentinel of 16+ characters, so that any leak of the key is unambiguous.
KEY = "Pseudonym-k3y-7d1e55c0a9b4"
OTHER_KEY = "An0ther-pseudonym-key-31fa"
WIDE = {"all_accounts": True}


@pytest.fixture
def district(make_sandbox, monkeypatch):
    handle = make_sandbox(schools=3, learners_per_school=30)
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(handle, max_retries=2))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{KEY_CONN.upper()}", json.dumps({"conn_type": "generic", "password": KEY})
    )
    return handle


def export(tmp_path: Path, name: str, **kwargs: Any) -> tuple[dict[str, Any], Path]:
    kwargs.setdefault("school_id", SCHOOL)
    kwargs.setdefault("pseudonym_key_conn_id", KEY_CONN)
    path = tmp_path / name
    op = D6ToStorageOperator(task_id=name.replace(".", "_"), path=str(path), **kwargs)
    return op.execute({}), path


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def raw_values(records: list[dict[str, Any]], fields: tuple[str, ...]) -> set[str]:
    """Return the non-empty values of *fields* in ground-truth *records*, as text."""
    return {str(r[f]) for r in records for f in fields if r.get(f) not in (None, "")}


def test_no_raw_sensitive_value_is_left_in_jsonl_or_csv(district, tmp_path):
    truth = district.control.data("accountable_persons", school_id=SCHOOL)
    secrets = raw_values(truth, D6_SENSITIVE_FIELDS)
    assert len(secrets) > 20  # emails and mobile numbers of every payer
    for fmt in ("jsonl", "csv"):
        for resource, filters in (
            ("accountable_persons", WIDE),
            # The payer embedded in each learner record is cleaned too.
            ("learners", {**WIDE, "include_accountable_person": True}),
        ):
            result, path = export(
                tmp_path,
                f"{resource}.{fmt}",
                resource=resource,
                filters=filters,
                format=fmt,
                pseudonymise=D6_SENSITIVE_FIELDS,
            )
            text = path.read_text(encoding="utf-8")
            assert result["records"] > 0
            leaked = sorted(value for value in secrets if value in text)
            assert leaked == [], f"{resource}.{fmt} still holds raw values"
            assert PSEUDONYM_PREFIX in text
            assert result["pseudonymised_fields"] == list(D6_SENSITIVE_FIELDS)


def test_pseudonyms_are_stable_across_runs_and_join_across_resources(district, tmp_path):
    fields = ("email_address", "accountable_person_id")
    first, path1 = export(
        tmp_path, "run1.jsonl", resource="accountable_persons", filters=WIDE, pseudonymise=fields
    )
    second, _ = export(
        tmp_path, "run2.jsonl", resource="accountable_persons", filters=WIDE, pseudonymise=fields
    )
    # Same key, same data: byte for byte the same file, so incremental loads and joins hold.
    assert first["sha256"] == second["sha256"]
    payers = jsonl(path1)
    truth = {
        r["accountable_person_id"]: r
        for r in district.control.data("accountable_persons", school_id=SCHOOL)
    }
    assert len(payers) == len(truth)
    pseudonyms = {p["accountable_person_id"] for p in payers}
    assert len(pseudonyms) == len(truth)  # one distinct pseudonym per payer
    assert all(p.startswith(PSEUDONYM_PREFIX) for p in pseudonyms)

    # The same id pseudonymised in another resource (and nested) gives the same value: d6 sends
    # ids as strings in one place and ints in another, the pseudonym does not care.
    _, learners_path = export(
        tmp_path,
        "learners.jsonl",
        resource="learners",
        filters={**WIDE, "include_accountable_person": True},
        pseudonymise=fields,
    )
    learners = jsonl(learners_path)
    assert {r["accountable_person_id"] for r in learners} <= pseudonyms
    nested = [r["accountable_person"] for r in learners if r.get("accountable_person")]
    assert nested
    by_id = {p["accountable_person_id"]: p["email_address"] for p in payers}
    for learner, person in (
        (r, r["accountable_person"]) for r in learners if r.get("accountable_person")
    ):
        assert person["accountable_person_id"] == learner["accountable_person_id"]
        assert person["email_address"] == by_id[person["accountable_person_id"]]


def test_another_key_gives_other_pseudonyms(district, tmp_path, monkeypatch):
    _, path1 = export(
        tmp_path, "a.jsonl", resource="accountable_persons", pseudonymise=["email_address"]
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_OTHER_KEY", json.dumps({"conn_type": "generic", "password": OTHER_KEY})
    )
    _, path2 = export(
        tmp_path,
        "b.jsonl",
        resource="accountable_persons",
        pseudonymise=["email_address"],
        pseudonym_key_conn_id="other_key",
    )
    first = {r["accountable_person_id"]: r["email_address"] for r in jsonl(path1)}
    second = {r["accountable_person_id"]: r["email_address"] for r in jsonl(path2)}
    assert first.keys() == second.keys()
    assert all(first[k] != second[k] for k in first)


def test_dropped_fields_leave_the_records_and_the_csv_header(district, tmp_path):
    result, path = export(
        tmp_path,
        "payers.csv",
        resource="accountable_persons",
        format="csv",
        drop_fields=["email_address", "mobile_number"],
        pseudonym_key_conn_id=None,
    )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames or []
    assert "email_address" not in header and "mobile_number" not in header
    assert "first_name" in header and rows
    text = path.read_text(encoding="utf-8")
    truth = district.control.data("accountable_persons", school_id=SCHOOL)
    assert not [v for v in raw_values(truth, ("email_address", "mobile_number")) if v in text]
    assert result["dropped_fields"] == ["email_address", "mobile_number"]
    # Dropping needs no key at all.
    assert "pseudonym_key_conn_id" not in json.dumps(result)


def test_nested_records_at_any_depth_and_lists_of_values():
    privacy = RecordPrivacy(drop_fields=["ethnic_group"], pseudonymise=["id_number"], key=KEY)
    record = {
        "id": 1,
        "id_number": "0001015009087",
        "parents": [
            {
                "id": 40,
                "id_number": "6702145009081",
                "ethnic_group": "X",
                "kids": [{"id_number": "1"}],
            }
        ],
        "tuition_languages": ["Afrikaans"],
    }
    cleaned = privacy.apply(record)
    assert cleaned["id"] == 1 and cleaned["tuition_languages"] == ["Afrikaans"]
    parent = cleaned["parents"][0]
    assert "ethnic_group" not in parent
    assert parent["id_number"] == privacy.pseudonym("6702145009081") != "6702145009081"
    assert parent["kids"][0]["id_number"] == privacy.pseudonym("1")
    # Empty stays empty: "no passport" is not turned into a value that looks like one.
    assert privacy.apply({"id_number": ""}) == {"id_number": ""}
    assert privacy.apply({"id_number": None}) == {"id_number": None}
    # d6's "1001" and 1001 are the same id.
    assert privacy.pseudonym("1001") == privacy.pseudonym(1001)
    assert record["id_number"] == "0001015009087"  # the input is not modified


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"pseudonymise": ["id_numbr"]}, "pseudonymise", "did you mean 'id_number'"),
        ({"drop_fields": ["emial_address"]}, "drop_fields", "did you mean 'email_address'"),
        ({"drop_fields": "Email Address"}, "drop_fields", "not a field name"),
        ({"drop_fields": {"a": 1}}, "drop_fields", "not a list"),
        ({"pseudonymise": ["id_number"], "drop_fields": ["id_number"]}, "pseudonymise", "both"),
        (
            {"pseudonymise": ["id_number"], "pseudonym_key_conn_id": None},
            "pseudonym_key_conn_id",
            "needs a key",
        ),
        ({"unknown_fields": "ignore"}, "unknown_fields", "refuse, warn"),
    ],
)
def test_bad_privacy_options_fail_when_the_dag_is_parsed(kwargs, field, needle):
    kwargs.setdefault("pseudonym_key_conn_id", KEY_CONN)
    with pytest.raises(D6InputError) as caught:
        D6ToStorageOperator(
            task_id="t", resource="learners", school_id=SCHOOL, path="/tmp/x.jsonl", **kwargs
        )
    assert caught.value.field == field
    assert needle in str(caught.value)


def test_unknown_fields_warn_mode_applies_the_name_and_says_so(district, tmp_path, capfd):
    result, path = export(
        tmp_path,
        "p.jsonl",
        resource="accountable_persons",
        drop_fields=["locker_code", "email_address"],
        unknown_fields="warn",
    )
    assert "known to have a field 'locker_code'" in "".join(capfd.readouterr())
    assert result["records"] > 0 and all("email_address" not in r for r in jsonl(path))


@pytest.mark.parametrize("password", [None, "short-key"])
def test_a_missing_or_short_key_fails_before_any_d6_request(
    district, tmp_path, monkeypatch, password
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WEAK_KEY", json.dumps({"conn_type": "generic", "password": password})
    )
    district.control.clear_requests()
    with pytest.raises(D6InputError) as caught:
        export(
            tmp_path,
            "p.jsonl",
            resource="accountable_persons",
            pseudonymise=["email_address"],
            pseudonym_key_conn_id="weak_key",
        )
    assert caught.value.field == "pseudonym_key_conn_id"
    assert "short-key" not in str(caught.value)
    assert district.control.requests() == []
    assert not (tmp_path / "p.jsonl").exists()


def test_the_key_is_never_in_logs_xcom_rendered_fields_or_files(district, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    op = D6ToStorageOperator(
        task_id="export",
        resource="learners",
        school_id="{{ params.school }}",
        filters={**WIDE, "include_accountable_person": True},
        path=f"file://{tmp_path}/{{{{ params.school }}}}/learners.jsonl",
        pseudonymise=D6_SENSITIVE_FIELDS,
        pseudonym_key_conn_id=KEY_CONN,
    )
    op.render_template_fields({"params": {"school": SCHOOL}})
    result = op.execute({})

    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    seen = "\n".join(
        [
            json.dumps(result, default=str),
            repr(op),
            str({name: getattr(op, name) for name in op.template_fields}),
            str(vars(op)),
            caplog.text,
            *capfd.readouterr(),
        ]
    )
    assert "Wrote learners" in seen  # the task's log lines are in what was scanned
    assert KEY not in seen
    assert KEY.encode() not in written
    with pytest.raises(TypeError):  # the keyed object refuses to travel (XCom, pickling)
        import pickle

        pickle.dumps(RecordPrivacy(pseudonymise=["id_number"], key=KEY))
    assert KEY not in repr(RecordPrivacy(pseudonymise=["id_number"], key=KEY))
