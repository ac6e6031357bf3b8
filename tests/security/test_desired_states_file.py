"""The desired-states file a trigger-form param names is hostile: confined, bounded, never echoed.

An attacker who may trigger d6_nightly_reconciliation chooses ``desired_states_path``. Reading it
must not leave the configured folder (``../``, absolute paths, symlinks), must not hang or
exhaust memory (FIFO, ``/dev/zero``, a huge file, an alias bomb, deep nesting) and must never copy
the file's content into the error (and so into the task log).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.operators.desired_states import (
    MAX_FILE_BYTES,
    load_desired_states,
)
from tests.support import parse_dags

SECRET = "Secret-content-4b1d9e"
GOOD = [{"school_id": 1000, "api_type_id": 8, "state": True}]


@pytest.fixture
def folder(tmp_path) -> Path:
    """The folder desired states may be read from, with a secret file right outside it."""
    root = tmp_path / "desired"
    root.mkdir()
    (tmp_path / "secret.yaml").write_text(
        f"- {{school_id: 1000, api_type_id: 8, state: {SECRET}}}\n"
    )
    return root


def refused(path: object, root: Path) -> D6InputError:
    with pytest.raises(D6InputError) as caught:
        load_desired_states(path, root=root)
    error = caught.value
    assert SECRET not in str(error) and SECRET not in repr(vars(error))
    return error


@pytest.mark.parametrize(
    "name",
    [
        "../secret.yaml",
        "../secret.yaml.missing",
        "sub/../../secret.yaml",
        "/etc/passwd",
        "/etc/nothing-here",
    ],
)
def test_a_path_outside_the_folder_is_refused_the_same_way_whether_it_exists_or_not(folder, name):
    error = refused(name, folder)
    assert error.field == "desired_states_path"
    assert "is outside the folder" in str(error)
    assert "does not exist" not in str(error)


def test_a_symlink_out_of_the_folder_is_refused(folder):
    (folder / "link.yaml").symlink_to(folder.parent / "secret.yaml")
    assert "is outside the folder" in str(refused("link.yaml", folder))


def test_a_fifo_is_refused_without_waiting_for_a_writer(folder):
    os.mkfifo(folder / "pipe.yaml")
    result: dict[str, object] = {}

    def read() -> None:
        try:
            load_desired_states("pipe.yaml", root=folder)
        except D6InputError as error:
            result["error"] = error

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "reading a FIFO hung"
    assert "is not a regular file" in str(result["error"])


def test_a_device_is_refused(tmp_path):
    # /dev/zero would read until memory runs out; inside a configured folder it is still refused.
    assert "is not a regular file" in str(refused("/dev/zero", Path("/dev")))
    assert "is not a regular file" in str(refused("urandom", Path("/dev")))


def test_a_file_over_the_size_cap_is_refused(folder):
    (folder / "big.yaml").write_text("- " + "x" * MAX_FILE_BYTES + "\n")
    assert f"larger than {MAX_FILE_BYTES} bytes" in str(refused("big.yaml", folder))


ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bomb.yaml", ALIAS_BOMB, "anchor or alias"),
        (
            "merge.yaml",
            "base: &b {school_id: 1000}\ndesired_states: [{<<: *b}]\n",
            "anchor or alias",
        ),
        ("deep.yaml", "[" * 100_000, "nests deeper"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nests deeper"),
        ("deep-map.yaml", "{a: " * 5000 + "1" + "}" * 5000, "nests deeper"),
        ("block.yaml", "".join(f"{' ' * i}- \n" for i in range(200)), "nests deeper"),
        ("tag.yaml", f"- !!python/object:os.system {SECRET}\n", "not valid YAML"),
        ("broken.yaml", f"desired_states: [\n  - {{{SECRET}", "not valid YAML"),
        ("broken.json", f'[{{"school_id": "{SECRET}",', "not valid JSON"),
        ("binary.yaml", None, "not UTF-8"),
    ],
)
def test_hostile_content_is_refused_quickly_and_never_echoed(folder, name, text, message):
    if text is None:
        (folder / name).write_bytes(b"\xff\xfe" + SECRET.encode() + b"\x80")
    else:
        (folder / name).write_text(text)
    error = refused(name, folder)
    assert message in str(error)
    assert error.field == "desired_states_path"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"school_id": SECRET, "api_type_id": 8, "state": True}, "desired_states[1].school_id"),
        ({"school_id": 1000, "api_type_id": 8, "state": True, SECRET: 1}, "desired_states[1]"),
        ({"school_id": 10**30, "api_type_id": 8, "state": True}, "desired_states[1].school_id"),
        ({"school_id": 1001, "api_type_id": 8.0, "state": True}, "desired_states[1].api_type_id"),
        ({"school_id": 1001, "api_type_id": 8, "state": SECRET}, "desired_states[1].state"),
        (SECRET, "desired_states[1]"),
    ],
)
def test_a_bad_entry_is_named_by_index_and_field_without_its_content(folder, entry, field):
    (folder / "entries.json").write_text(json.dumps([*GOOD, entry]))
    error = refused("entries.json", folder)
    assert error.field == field


def test_control_characters_in_the_name_are_refused(folder):
    error = refused("desired.yaml\n[info] forged", folder)
    assert "\n" not in str(error)


def test_the_dag_reads_only_inside_its_folder(
    airflow_db, make_sandbox, monkeypatch, tmp_path, capfd
):
    handle = make_sandbox(schools=2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_DEFAULT",
        json.dumps(
            {
                "conn_type": "d6",
                "host": handle.base_url,
                "login": handle.username,
                "password": handle.password,
            }
        ),
    )
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "outside.json").write_text(json.dumps(GOOD))
    monkeypatch.setenv("AIRFLOW__D6__DESIRED_STATES_DIR", str(allowed))
    dag = parse_dags().get_dag("d6_nightly_reconciliation")

    dag_run = dag.test(run_conf={"desired_states_path": "../outside.json"})

    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["load_desired_states"] == "failed"
    assert [r for r in handle.control.requests() if r["method"] != "GET"] == []
    output = capfd.readouterr()
    assert "desired_states_path: ../outside.json is outside the folder" in output.out + output.err
