"""Migrate a fresh Airflow home, store the connections in it and ``dag.test()`` the bench DAG.

Run by ``bench_httphook`` in its own interpreter with ``AIRFLOW_HOME`` pointing at a temporary
folder; prints the per-task timings as JSON on its last line.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

DAG_ID = "d6_bench_wall_vs_httphook"


def _store_connections(spec: dict) -> None:
    """Write the d6 and the http connection into the metadata database."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Connection(
                conn_id="d6_bench",
                conn_type="d6",
                host=spec["base_url"],
                login=spec["username"],
                password=spec["password"],
            )
        )
        # HttpHook sends every unknown extra as a header: that is how it gets d6's auth headers.
        session.add(
            Connection(
                conn_id="http_bench",
                conn_type="http",
                host=spec["base_url"],
                extra=json.dumps(
                    {"HTTP-X-USERNAME": spec["username"], "HTTP-X-PASSWORD": spec["password"]}
                ),
            )
        )


def main() -> None:
    """Set up the Airflow home, run the DAG and print the timings the tasks recorded."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    from airflow import settings
    from airflow.utils.db import initdb

    initdb()
    _store_connections(spec)
    dag_file = Path(settings.DAGS_FOLDER) / f"{DAG_ID}.py"
    shutil.copyfile(spec["dag_template"], dag_file)
    Path(spec["results_path"]).unlink(missing_ok=True)

    from airflow_provider_d6._compat import DagBag

    bag = DagBag(dag_folder=str(dag_file), load_op_links=False)
    if DAG_ID not in bag.dags:
        raise SystemExit(f"the bench DAG did not load: {bag.import_errors}")
    run = bag.dags[DAG_ID].test()
    if str(run.state) != "success":
        raise SystemExit(f"the bench DAG run ended {run.state}")
    lines = Path(spec["results_path"]).read_text().splitlines()
    print(json.dumps({"state": str(run.state), "rounds": [json.loads(line) for line in lines]}))


if __name__ == "__main__":
    main()
