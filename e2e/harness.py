"""Processes, ports, PostgreSQL and Redis for the deployment test: start, wait, tear down by pid."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
# Redis keeps 16 databases; the upper half is unlikely to be used by anything else on the machine,
# and a database that already holds keys is skipped so that a concurrent run is never disturbed.
REDIS_DB_CANDIDATES = tuple(range(15, 7, -1))

_STARTED = time.monotonic()


class E2EFailure(Exception):
    """A step of the deployment test failed; ``hint`` points at the likely cause."""

    def __init__(
        self, message: str, *, hint: str | None = None, logs: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.hint = hint
        self.logs = logs


def step(message: str) -> None:
    """Print one progress line with the seconds elapsed since the run started.

    :param message: what is happening now
    """
    print(f"[e2e {time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return it; fail after ``timeout``.

    :param what: the awaited condition, for the progress line and the failure message
    :param probe: returns a truthy value when the condition holds (exceptions count as "not yet")
    :param timeout: seconds before giving up
    :param interval: seconds between probes
    :param abort: returns a reason to stop waiting early (a process died, a run failed), or None
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except E2EFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe failing just means "not yet"
            last_error = exc
        if abort is not None and (reason := abort()):
            raise E2EFailure(f"gave up waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            detail = (
                f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            )
            raise E2EFailure(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file ('' when it does not exist).

    :param path: the file
    :param lines: how many lines
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """A process the runner started, in its own session so its whole group can be stopped."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    # Where the log file ended when the process started: a restarted component appends to it.
    log_offset: int = 0

    @property
    def pid(self) -> int:
        """Return the process id (also its process-group id)."""
        return self.popen.pid

    def exit_code(self) -> int | None:
        """Return the exit code, or None while it runs."""
        return self.popen.poll()

    def log_text(self, since_start: bool = False) -> str:
        """Return everything written to the process's log file so far.

        :param since_start: only what this process wrote, not an earlier one of the same name
        """
        try:
            with open(self.log_path, "rb") as handle:
                if since_start:
                    handle.seek(self.log_offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


@dataclass
class ProcessSet:
    """Every process started by the run, stopped by pid in reverse order of starting."""

    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        """Start ``argv`` with output to ``<log_dir>/<name>.log``.

        :param name: short label, also the log file name
        :param argv: the command
        :param env: the complete environment of the process
        """
        log_path = self.log_dir / f"{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Not the checkout: a component must import the provider as installed, exactly
                # as on a machine that has no source tree.
                cwd=self.log_dir,
                # Own session: the group id equals the pid, so the component and every child it
                # forks (Celery pool, log server, parsing processes) stop together, by that pid.
                start_new_session=True,
            )
        process = ManagedProcess(name, popen, log_path, offset)
        self.processes.append(process)
        step(f"started {name} (pid {popen.pid}), log {log_path}")
        return process

    def get(self, name: str) -> ManagedProcess:
        """Return the process started under ``name`` (the latest, when it was restarted).

        :param name: the label given to :meth:`start`
        """
        for process in reversed(self.processes):
            if process.name == name:
                return process
        raise KeyError(f"no process named {name!r} was started")

    def stop(self, name: str, sig: signal.Signals, grace: float = 60.0) -> float:
        """Signal one process group, wait until it is gone, forget it; return the seconds taken.

        After any signal but SIGKILL the group gets ``grace`` seconds, then is killed. Whatever
        is left of the process tree is killed at the end, including children that moved to a
        process group of their own (Airflow runs each task in one): a machine that stops takes
        every process with it.

        :param name: the label given to :meth:`start`
        :param sig: the signal
        :param grace: seconds to wait for the group to end on its own
        """
        process = self.get(name)
        started = time.monotonic()
        tree = descendants(process.pid)
        if sig == signal.SIGKILL:
            _kill_tree(process.pid, tree)
        else:
            _signal_group(process.pid, sig)
        try:
            process.popen.wait(timeout=grace if sig != signal.SIGKILL else 10)
        except subprocess.TimeoutExpired:
            step(f"{name} (pid {process.pid}) still runs {grace:.0f}s after {sig.name}: SIGKILL")
        _kill_tree(process.pid, tree + descendants(process.pid))
        with suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=10)
        # Every process of the tree must be gone: a task process that outlived its worker would
        # finish its work, and a scenario killing the worker would prove nothing.
        wait_until(
            f"every process of {name} to end",
            lambda: not any(_alive(pid) for pid in [process.pid, *tree]),
            timeout=20,
            interval=0.2,
        )
        self.processes.remove(process)
        took = time.monotonic() - started
        step(
            f"stopped {name} (pid {process.pid}, {len(tree)} child processes) with {sig.name} "
            f"in {took:.1f}s"
        )
        return took

    def dead(self) -> str | None:
        """Return a description of the first process that exited, or None when all run."""
        for process in self.processes:
            code = process.exit_code()
            if code is not None:
                return f"{process.name} (pid {process.pid}) exited with code {code}"
        return None

    def stop_all(self, grace: float = 15.0) -> None:
        """Stop every process group: SIGTERM, then SIGKILL for what is left after ``grace``.

        :param grace: seconds a component gets to shut down cleanly
        """
        trees = {process.pid: descendants(process.pid) for process in self.processes}
        for process in reversed(self.processes):
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in reversed(self.processes):
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in reversed(self.processes):
            # The leader may be gone while children it forked still hold the group, or a group of
            # their own (a task process): kill them all.
            _kill_tree(process.pid, trees[process.pid])
            try:
                process.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                step(f"warning: {process.name} (pid {process.pid}) did not stop")


def descendants(pid: int) -> list[int]:
    """Return the pids of every process descending from ``pid`` (read from /proc), parents first.

    :param pid: the root of the tree
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces: the fields after it are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Say whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _kill_tree(pgid: int, pids: list[int]) -> None:
    _signal_group(pgid, signal.SIGKILL)
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)  # a child that leads a process group of its own
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_for_url_line(process: ManagedProcess, pattern: str, timeout: float = 30) -> str:
    """Wait until the process prints a line matching ``pattern`` and return the first group.

    :param process: a process whose output goes to its log file
    :param pattern: regular expression with one group
    :param timeout: seconds
    """
    regex = re.compile(pattern)

    def probe() -> str | None:
        match = regex.search(process.log_text())
        return match.group(1) if match else None

    def abort() -> str | None:
        code = process.exit_code()
        return None if code is None else f"{process.name} exited with code {code}"

    return wait_until(
        f"{process.name} to print its URL", probe, timeout=timeout, interval=0.2, abort=abort
    )


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_connect(dbname: str = "postgres") -> Any:
    import psycopg2

    connection = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5
    )
    connection.autocommit = True
    return connection


def check_postgres() -> str:
    """Return the server version, or raise E2EFailure saying how to start PostgreSQL."""
    try:
        connection = _pg_connect()
    except Exception as exc:  # noqa: BLE001 - any failure here means "not reachable"
        raise E2EFailure(
            f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT} as user {PG_USER!r}: {exc}".strip(),
            hint="start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
            "(or run `bash e2e/ensure_services.sh`)",
        ) from None
    with connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def new_database_name() -> str:
    """Return a fresh, valid database name for one run."""
    return f"d6_e2e_{secrets.token_hex(4)}"


def create_database(name: str) -> None:
    """Create the run's metadata database.

    :param name: from :func:`new_database_name`
    """
    _require_safe_name(name)
    connection = _pg_connect()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def drop_database(name: str) -> None:
    """Drop the run's database, closing connections a stopped component may have left.

    :param name: from :func:`new_database_name`
    """
    _require_safe_name(name)
    connection = _pg_connect()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


def _require_safe_name(name: str) -> None:
    # The name is interpolated into DDL (identifiers cannot be bound parameters).
    if not re.fullmatch(r"d6_e2e_[0-9a-f]{8}", name):
        raise ValueError(f"refusing to use database name {name!r}")


def count_celery_results(database: str) -> dict[str, int]:
    """Return how many Celery task results per status the result backend stored.

    :param database: the run's database (Celery's database result backend writes there)
    """
    connection = _pg_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            return dict(cursor.fetchall())
    finally:
        connection.close()


def deferred_triggers(database: str, dag_id: str, task_id: str) -> dict[str, dict[str, Any]]:
    """Return, per run id, the trigger a deferred task instance waits on, as the database holds it.

    The REST API does not show a trigger's kwargs; a restarted triggerer rebuilds the trigger
    from exactly these rows. Each value holds ``trigger_id``, ``triggerer_id``,
    ``trigger_timeout`` (epoch seconds or None) and ``kwargs`` (Fernet-encrypted JSON text).

    :param database: the run's database
    :param dag_id: the DAG
    :param task_id: the deferred task
    """
    connection = _pg_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT ti.run_id, t.id, t.triggerer_id, ti.trigger_timeout, t.kwargs "
                "FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
                "WHERE ti.dag_id = %s AND ti.task_id = %s AND ti.state = 'deferred'",
                (dag_id, task_id),
            )
            return {
                run_id: {
                    "trigger_id": trigger_id,
                    "triggerer_id": triggerer_id,
                    "trigger_timeout": timeout.timestamp() if timeout else None,
                    "kwargs": kwargs,
                }
                for run_id, trigger_id, triggerer_id, timeout, kwargs in cursor.fetchall()
            }
    finally:
        connection.close()


# --- Redis --------------------------------------------------------------------------------------


def _redis(db: int) -> Any:
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)


def check_redis() -> None:
    """Raise E2EFailure saying how to start Redis when it does not answer."""
    try:
        _redis(0).ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "not reachable"
        raise E2EFailure(
            f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT}: {exc}",
            hint="start it: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
            '--save "" --appendonly no (or run `bash e2e/ensure_services.sh`)',
        ) from None


def pick_redis_db(candidates: tuple[int, ...] = REDIS_DB_CANDIDATES) -> int:
    """Return an empty Redis database number to use as the Celery broker, claiming it with a key.

    :param candidates: database numbers to try, in order
    """
    for db in candidates:
        client = _redis(db)
        # SET NX on a marker claims the database atomically against a concurrent run.
        if client.dbsize() == 0 and client.set("d6-e2e:claimed", str(os.getpid()), nx=True):
            return db
    raise E2EFailure(
        f"no empty Redis database among {list(candidates)}",
        hint="another run may still hold them; `redis-cli -n N flushdb` frees database N",
    )


def flush_redis_db(db: int) -> None:
    """Empty the run's broker database.

    :param db: from :func:`pick_redis_db`
    """
    _redis(db).flushdb()


# --- Everything else ----------------------------------------------------------------------------


def venv_bin() -> Path:
    """Return the bin folder of the Python running the runner (holds `airflow`, `d6-sandbox`)."""
    return Path(sys.executable).parent


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long a block took.

    :param label: what the block does
    """
    start = time.monotonic()
    yield
    step(f"{label}: {time.monotonic() - start:.1f}s")
