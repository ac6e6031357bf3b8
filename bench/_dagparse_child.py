"""Parse DAG files the way Airflow's DAG processor does and print the timings as JSON.

The processor imports Airflow (and the ``airflow.*`` modules a file names) once, then forks a
child per file that builds a DagBag of that one file; the provider's own imports are paid in the
child, on every parse. This script reproduces that, so the figure is what the processor sees.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time


def _parse_in_fork(path: str) -> dict:
    from airflow_provider_d6._compat import DagBag

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report, and leave without running any atexit handler
        os.close(read_end)
        started = time.perf_counter()
        bag = DagBag(dag_folder=path, load_op_links=False)
        seconds = time.perf_counter() - started
        errors = [text.strip().splitlines()[-1] for text in bag.import_errors.values()]
        os.write(
            write_end,
            json.dumps(
                {"file": path, "seconds": seconds, "dags": len(bag.dags), "import_errors": errors}
            ).encode(),
        )
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def main() -> None:
    """Parse every file of the JSON spec in ``argv[1]`` for the given number of rounds."""
    spec = json.loads(sys.argv[1])
    from airflow.utils.file import iter_airflow_imports

    from airflow_provider_d6._compat import DagBag  # noqa: F401 - loaded before forking

    # One untimed parse per file first, so that the bytecode of the files and of what they
    # import is cached, as it is on any machine that has parsed them once.
    for path in spec["files"]:
        _parse_in_fork(path)
    runs = []
    for number in range(spec["rounds"]):
        files = spec["files"] if number % 2 == 0 else spec["files"][::-1]
        for path in files:
            for module in iter_airflow_imports(path):
                try:
                    importlib.import_module(module)
                except Exception:  # noqa: BLE001 - the processor also only warns
                    continue
            runs.append(_parse_in_fork(path))
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
