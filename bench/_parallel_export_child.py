"""Child of ``parallel_tasks_shared_limit``: one task exporting one school's learners with D6Hook.

Argument: one JSON document with ``conn_id``, ``school_id``, ``path`` (the JSON Lines file to
write) and ``go`` (a file: once its imports are done and its connection read, the child creates
``path + ".ready"`` and waits for ``go`` to exist, so that every child starts at the same moment)
and optionally ``limit`` (stop after that many records).
Prints one JSON line: when it started and ended, the records written and a digest of their ids.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path


def main() -> None:
    spec = json.loads(sys.argv[1])
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook(d6_conn_id=spec["conn_id"])
    hook.get_conn()
    Path(spec["path"] + ".ready").touch()
    go = Path(spec["go"])
    deadline = time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.005)
    started = time.time()
    ids = []
    limit = spec.get("limit")
    with open(spec["path"], "w", encoding="utf-8") as out:
        for learner in hook.iter_learners(spec["school_id"]):
            out.write(json.dumps(learner) + "\n")
            ids.append(learner["learner_id"])
            if limit is not None and len(ids) >= limit:
                break
    ended = time.time()
    print(
        json.dumps(
            {
                "started": started,
                "ended": ended,
                "records": len(ids),
                "unique": len(set(ids)),
                "ids_sha256": hashlib.sha256(json.dumps(sorted(ids)).encode()).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
