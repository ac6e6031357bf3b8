"""What d6 sends ends up in files a school's clerk opens: no formula runs, every string survives.

A hostile d6 (over real HTTP on loopback) answers records whose text starts like a spreadsheet
formula, holds line separators a JSON Lines reader splits on, and a lone surrogate that no UTF-8
file can hold. The export must neutralise the formulas in CSV (unless told not to), keep one JSON
record per line for ``str.splitlines()``, round-trip every string in JSON Lines, and not fail.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hostile_d6 import run_hostile_d6

from airflow_provider_d6.operators.storage import D6ToStorageOperator

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]
NUMBERS = ["-150.00", "+27", "-5"]
LINE_BREAKERS = ["a\u2028b", "c\u2029d", "e\x85f", "g\x1ch", "i\nj", "k\r\nl", "m\x0bn"]
LONE_SURROGATE = "smile \ud83d"


def record(index: int, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "school_id": 1000 + index,
        "school_name": name,
        "admin_email_address": "clerk@school.example",
        "telephone_calling_code": "+27",
        "telephone_number": "0110000000",
        "api_type_id": 8,
        "api_type": "Admin+ API",
        "activated_by_integrator": "Yes",
        **extra,
    }


RECORDS = [
    record(index, name, note=name)
    for index, name in enumerate([*FORMULAS, *NUMBERS, *LINE_BREAKERS, LONE_SURROGATE, "Plain"])
]


@pytest.fixture
def hostile(monkeypatch):
    with run_hostile_d6() as d6:
        d6.client_integrations = RECORDS
        conn = {
            "conn_type": "d6",
            "host": d6.base_url,
            "login": "export-user",
            "password": "Export-pw-1e2d3c4b",
            "extra": {"max_retries": 1},
        }
        monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(conn))
        yield d6


def export(tmp_path, name: str, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    target = tmp_path / name
    result = D6ToStorageOperator(
        task_id="export", resource="client_integrations", path=str(target), **kwargs
    ).execute({})
    return result, target.read_bytes()


def test_json_lines_round_trip_every_string_one_record_per_line(hostile, tmp_path):
    result, data = export(tmp_path, "out.jsonl")

    text = data.decode("utf-8")  # valid UTF-8, lone surrogate included (escaped)
    lines = text.splitlines()
    assert len(lines) == result["records"] == len(RECORDS)
    assert [json.loads(line) for line in lines] == RECORDS


def test_csv_neutralises_formulas_and_keeps_numbers(hostile, tmp_path, caplog):
    result, data = export(tmp_path, "out.csv", format="csv")

    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert result["records"] == len(rows) == len(RECORDS)
    names = [row["school_name"] for row in rows]
    for original, written in zip([r["school_name"] for r in RECORDS], names, strict=True):
        if original in FORMULAS:
            assert written == f"'{original}"
        elif original == LONE_SURROGATE:
            assert written == "smile \ufffd"
        else:
            assert written == original
    # A number stays a number, the phone code too.
    assert {row["telephone_calling_code"] for row in rows} == {"+27"}
    assert any("lone surrogate" in message for message in caplog.messages)
    # Nothing a spreadsheet would run is left at the start of any cell.
    cells = [cell for row in rows for key, cell in row.items() if key != "extra"]
    assert not [c for c in cells if c[:1] in ("=", "@", "\t", "\r") and c not in NUMBERS]


def test_csv_formulas_verbatim_when_turned_off(hostile, tmp_path):
    _, data = export(tmp_path, "raw.csv", format="csv", neutralise_formulas=False)

    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert [row["school_name"] for row in rows][: len(FORMULAS)] == FORMULAS
