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

    @property
    def pid(self) -> int:
        """Return the process id (also its process-group id)."""
        return self.popen.pid

    def exit_code(self) -> int | None:
        """Return the exit code, or None while it runs."""
        return self.popen.poll()

    def log_text(self) -> str:
        """Return everything the process wrote so far."""
        try:
            return self.log_path.read_text("utf-8", "replace")
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
        process = ManagedProcess(name, popen, log_path)
        self.processes.append(process)
        step(f"started {name} (pid {popen.pid}), log {log_path}")
        return process

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
        for process in reversed(self.processes):
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in reversed(self.processes):
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in reversed(self.processes):
            # The leader may be gone while children it forked still hold the group: kill the group.
            _signal_group(process.pid, signal.SIGKILL)
            try:
                process.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                step(f"warning: {process.name} (pid {process.pid}) did not stop")


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
