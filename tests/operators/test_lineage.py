"""OpenLineage: a d6 export reports the collection it read and the file it wrote.

The end-to-end test runs a DAG under ``dag.test()`` in a child process with the OpenLineage
provider's file transport configured (OpenLineage reads its configuration once per process), and
reads the events the provider's listener emitted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_d6.hooks._endpoints import ENDPOINTS, RESOURCE_FIELDS
from airflow_provider_d6.operators._lineage import (
    d6_dataset_name,
    d6_namespace,
    schema_fields,
    storage_dataset_id,
)
from tests.support import connection_json

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHOOL = 1000
# The seeded school with both Admin+ and Curriculum+ activated.
BOTH_MODULES = 1002
DAG_ID = "d6_test_lineage"
DAG_FILE = textwrap.dedent(
    f'''
    """Export two collections of one school, one as JSON Lines and one as CSV."""

    from __future__ import annotations

    import datetime as dt
    import os

    from airflow.sdk import DAG

    from airflow_provider_d6.operators.storage import D6ToStorageOperator

    OUT = os.environ["D6_LINEAGE_TEST_OUT"]

    with DAG("{DAG_ID}", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False):
        D6ToStorageOperator(
            task_id="learners", resource="learners", school_id={SCHOOL},
            filters={{"all_accounts": True}}, path=OUT + "/learners.jsonl",
        )
        D6ToStorageOperator(
            task_id="notes", resource="notes", school_id={SCHOOL}, format="csv",
            filters={{"include_deleted": True}}, path="file://" + OUT + "/notes.csv",
        )
        # Admin+ and Curriculum+ (v1): a school's learners, the district-wide genders lookup and
        # a school's learner subjects as CSV.
        D6ToStorageOperator(
            task_id="adminplus_learners", resource="adminplus_learners",
            school_id={BOTH_MODULES}, path=OUT + "/adminplus_learners.jsonl",
        )
        D6ToStorageOperator(task_id="genders", resource="genders", path=OUT + "/genders.jsonl")
        D6ToStorageOperator(
            task_id="learner_subjects", resource="learner_subjects", school_id={BOTH_MODULES},
            format="csv", path=OUT + "/learner_subjects.csv",
        )
    '''
)
RUNNER = textwrap.dedent(
    f"""
    import sys

    from airflow.utils.db import initdb

    from airflow_provider_d6._compat import DagBag

    initdb()
    dag = DagBag(dag_folder=sys.argv[1]).get_dag("{DAG_ID}")
    run = dag.test()
    states = {{ti.task_id: ti.state for ti in run.get_task_instances()}}
    print("STATES", states)
    sys.exit(0 if run.state == "success" else 1)
    """
)


def _ol_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow.providers.openlineage") is not None


needs_openlineage = pytest.mark.skipif(
    not _ol_installed(), reason="apache-airflow-providers-openlineage is not installed"
)


def test_d6_collections_are_named_per_host_school_and_resource():
    assert d6_namespace("https://Integrate.d6plus.co.za/api") == "d6://integrate.d6plus.co.za"
    assert d6_namespace("http://127.0.0.1:8765/api/") == "d6://127.0.0.1:8765"
    # Credentials in a URL never reach a lineage backend.
    assert d6_namespace("https://user:secret@integrate.d6plus.co.za/api") == (
        "d6://integrate.d6plus.co.za"
    )
    assert d6_dataset_name("learners", 1000) == "schools/1000/learners"
    assert d6_dataset_name("schools", None) == "schools"


def test_files_are_named_as_openlineage_and_airflow_name_them():
    assert storage_dataset_id("file:///data/d6/learners.jsonl") == (
        "file",
        "/data/d6/learners.jsonl",
    )
    assert storage_dataset_id("s3://aws_default@exports/d6/notes.csv") == (
        "s3://exports",
        "d6/notes.csv",
    )
    assert storage_dataset_id("gs://bucket/a/b.jsonl") == ("gs://bucket", "a/b.jsonl")


def test_schema_is_the_catalogues_documented_fields_with_ids_as_integers():
    fields = schema_fields("notes")
    assert [name for name, _ in fields] == RESOURCE_FIELDS["notes"]
    typed = {name for name, kind in fields if kind == "integer"}
    assert typed == set(ENDPOINTS["notes"].id_fields) & set(RESOURCE_FIELDS["notes"])
    assert schema_fields("notes", extra_column=True)[-1] == ("extra", "string")


def test_v1_schemas_type_ids_integer_fields_money_marks_and_codes():
    marks = dict(schema_fields("learner_subject_marks"))
    assert list(marks) == list(ENDPOINTS["learner_subject_marks"].fields)
    assert marks["learner_id"] == marks["subject_id"] == marks["year"] == "integer"
    assert marks["mark"] == "decimal"  # exact decimal text, as the hook writes it
    assert marks["subject_name"] is None
    learners = dict(schema_fields("adminplus_learners"))
    assert learners["id_number"] == "string"  # a code: may start with 0, never an integer
    assert learners["home_language_id"] == "integer"
    # A pseudonymised field is text in the file, whatever it was in d6.
    assert dict(schema_fields("adminplus_learners", pseudonymised=["id"]))["id"] == "string"
    assert "id_number" not in dict(schema_fields("adminplus_learners", dropped=["id_number"]))


def test_the_operator_imports_no_openlineage_and_reports_none_without_it(sandbox, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys

        from airflow_provider_d6.operators.storage import D6ToStorageOperator

        op = D6ToStorageOperator(task_id="t", resource="learners", school_id={SCHOOL},
                                 filters={{"all_accounts": True}}, path={str(tmp_path / "out.jsonl")!r})
        result = op.execute({{}})
        # Airflow itself reads every provider's metadata; nothing may load the client or extractors.
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "openlineage"
                        or m.startswith(("airflow.providers.openlineage.extractors",
                                         "airflow.providers.openlineage.plugins")))
        print("LOADED", loaded)
        # As if neither the OpenLineage provider nor its client were installed.
        for name in ("openlineage", "airflow.providers.openlineage.extractors"):
            sys.modules[name] = None
        print("LINEAGE", op.get_openlineage_facets_on_complete(None), result["records"])
        """
    )
    env = {**os.environ, "AIRFLOW_CONN_D6_DEFAULT": connection_json(sandbox)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "LOADED []" in lines, done.stdout[-2000:]
    line = next(x for x in lines if x.startswith("LINEAGE"))
    learners = len(sandbox.control.data("learners", school_id=SCHOOL))
    assert line == f"LINEAGE None {learners}"


@needs_openlineage
def test_a_run_emits_the_collection_read_and_the_file_written(make_sandbox, tmp_path):
    handle = make_sandbox(schools=3, learners_per_school=30)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "lineage_dag.py").write_text(DAG_FILE)
    out = tmp_path / "out"
    events_file = tmp_path / "openlineage.jsonl"
    bundles = [
        {
            "name": "d6-lineage-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dags)},
        },
    ]
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        # A database of its own: the child migrates and writes it while this worker's stays idle.
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW_CONN_D6_DEFAULT": connection_json(handle, max_retries=2),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "d6-tests",
        "D6_LINEAGE_TEST_OUT": str(out),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(dags)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-12000:])
    assert events_file.exists(), done.stderr[-4000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {
        e["job"]["name"].rpartition(".")[2]: e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith(f"{DAG_ID}.")
    }
    v1 = {"adminplus_learners": (BOTH_MODULES, "jsonl"), "genders": (None, "jsonl")}
    v1["learner_subjects"] = (BOTH_MODULES, "csv")
    assert set(complete) == {"learners", "notes", *v1}, [(e["eventType"], e["job"]) for e in events]

    namespace = d6_namespace(handle.base_url)
    expected = {
        "learners": (
            len(handle.control.data("learners", school_id=SCHOOL)),
            out / "learners.jsonl",
            RESOURCE_FIELDS["learners"],
        ),
        "notes": (
            len(handle.control.data("notes", school_id=SCHOOL)),
            out / "notes.csv",
            [*RESOURCE_FIELDS["notes"], "extra"],
        ),
    }
    for task, (records, path, written_fields) in expected.items():
        event = complete[task]
        [source] = event["inputs"]
        assert (source["namespace"], source["name"]) == (namespace, f"schools/{SCHOOL}/{task}")
        read_fields = [f["name"] for f in source["facets"]["schema"]["fields"]]
        assert read_fields == RESOURCE_FIELDS[task]
        assert source["inputFacets"]["inputStatistics"]["rowCount"] == records
        [target] = event["outputs"]
        assert (target["namespace"], target["name"]) == ("file", str(path))
        assert [f["name"] for f in target["facets"]["schema"]["fields"]] == written_fields
        statistics = target["outputFacets"]["outputStatistics"]
        assert statistics["rowCount"] == records
        assert statistics["size"] == path.stat().st_size
    for task, (school, file_format) in v1.items():
        event = complete[task]
        [source] = event["inputs"]
        name = task if school is None else f"schools/{school}/{task}"
        assert (source["namespace"], source["name"]) == (namespace, name)
        documented = [
            {"name": field, "type": kind} if kind else {"name": field}
            for field, kind in schema_fields(task)
        ]
        read = [
            {k: v for k, v in f.items() if k in ("name", "type")}
            for f in source["facets"]["schema"]["fields"]
        ]
        assert read == documented
        path = out / f"{task}.{file_format}"
        lines = path.read_text().splitlines()
        records = len(lines) - (1 if file_format == "csv" else 0)  # the CSV header
        assert records > 0
        assert source["inputFacets"]["inputStatistics"]["rowCount"] == records
        [target] = event["outputs"]
        assert (target["namespace"], target["name"]) == ("file", str(path))
        written = [f["name"] for f in target["facets"]["schema"]["fields"]]
        assert written == [f for f, _ in schema_fields(task, extra_column=file_format == "csv")]
        statistics = target["outputFacets"]["outputStatistics"]
        assert statistics["rowCount"] == records
        assert statistics["size"] == path.stat().st_size
    # The connection's password goes nowhere near the lineage backend.
    assert handle.password not in events_file.read_text()
