"""Configure and start Airflow in the production shape: PostgreSQL, Celery on Redis, five processes."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from e2e.airflow_api import AirflowAPI
from e2e.harness import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_HOST,
    REDIS_PORT,
    E2EFailure,
    ManagedProcess,
    ProcessSet,
    free_port,
    step,
    tail,
    venv_bin,
    wait_until,
)
from e2e.worker_identity import DEFAULT_NAME as WORKER_HOSTNAME

E2E_DIR = Path(__file__).resolve().parent
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


@dataclass
class Deployment:
    """One Airflow deployment: where it lives, how it is configured, what runs."""

    run_dir: Path
    database: str
    redis_db: int
    dags_folder: Path
    api_port: int = field(default_factory=free_port)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # PYTHONPATH entries put first on every component, or on the worker only (to break a copy of the
    # provider in one place, as when a machine has a bad install).
    python_path: list[Path] = field(default_factory=list)
    worker_python_path: list[Path] = field(default_factory=list)
    # Settings added to (or replacing) the common environment, e.g. the chaos run's short timeouts.
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: ProcessSet | None = None

    @property
    def airflow_home(self) -> Path:
        """Return the deployment's AIRFLOW_HOME."""
        return self.run_dir / "airflow_home"

    @property
    def log_dir(self) -> Path:
        """Return the folder of the component logs."""
        return self.run_dir / "logs"

    @property
    def task_log_dir(self) -> Path:
        """Return Airflow's base log folder (task and triggerer logs)."""
        return self.airflow_home / "logs"

    @property
    def api_url(self) -> str:
        """Return the api-server's base URL (UI and REST)."""
        return f"http://127.0.0.1:{self.api_port}"

    def api(self) -> AirflowAPI:
        """Return a REST client logged in as the admin user."""
        client = AirflowAPI(self.api_url, ADMIN_USER, self.admin_password)
        client.login()
        return client

    def environment(self) -> dict[str, str]:
        """Return the environment every Airflow component runs with."""
        # Start from the caller's environment minus anything Airflow would read, so a developer's
        # own AIRFLOW_HOME, AIRFLOW__* or AIRFLOW_CONN_* cannot leak into the deployment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["PYTHONUNBUFFERED"] = "1"
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in self.python_path)
        # The driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, not installed.
        db = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"
        secrets_file = self.run_dir / "secrets.json"
        keys = json.loads(secrets_file.read_text())
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                # Pick up the DAG files within seconds, not the production defaults of minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.run_dir / "bundles"),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_log_dir),
                # The default ports (8793, 8794) may be taken by another Airflow on the machine.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(keys["worker_log_port"]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(keys["trigger_log_port"]),
            }
        )
        env.update(self.extra_env)
        return env

    def worker_environment(self) -> dict[str, str]:
        """Return the Celery worker's environment: the common one plus its own identity."""
        env = self.environment()
        paths = [*self.worker_python_path, E2E_DIR, *self.python_path]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "worker_identity.hostname"
        env["D6_E2E_WORKER_HOSTNAME"] = WORKER_HOSTNAME
        return env

    @property
    def passwords_file(self) -> Path:
        """Return SimpleAuthManager's passwords file (written before the api-server starts)."""
        return self.airflow_home / "simple_auth_manager_passwords.json"

    def prepare(self) -> None:
        """Create the folders, the shared secrets and the admin's password file."""
        from cryptography.fernet import Fernet

        for folder in (self.airflow_home, self.log_dir, self.task_log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Every component must share these, exactly as in a multi-machine deployment: the fernet
        # key decrypts connection passwords stored by the api-server, the JWT secret lets the
        # worker's tasks call the execution API, the API secret signs log-server requests.
        keys = {
            "fernet_key": Fernet.generate_key().decode(),
            "jwt_secret": secrets.token_urlsafe(32),
            "api_secret_key": secrets.token_urlsafe(32),
            "worker_log_port": free_port(),
            "trigger_log_port": free_port(),
        }
        secrets_file = self.run_dir / "secrets.json"
        secrets_file.write_text(json.dumps(keys))
        secrets_file.chmod(0o600)
        self.passwords_file.write_text(json.dumps({ADMIN_USER: self.admin_password}))
        self.passwords_file.chmod(0o600)
        self.processes = ProcessSet(self.log_dir)

    def migrate(self) -> None:
        """Run ``airflow db migrate`` on the fresh PostgreSQL database."""
        log_path = self.log_dir / "db-migrate.log"
        with open(log_path, "wb") as log_file:
            result = subprocess.run(
                [str(venv_bin() / "airflow"), "db", "migrate"],
                env=self.environment(),
                cwd=self.run_dir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            )
        if result.returncode != 0:
            raise E2EFailure(
                f"airflow db migrate failed with code {result.returncode}",
                hint="see the migration log below; a provider that breaks `airflow` itself shows here",
                logs=(str(log_path),),
            )

    def start(self) -> None:
        """Start the five components, each its own process group."""
        for name in COMPONENTS:
            self.start_component(name)

    def start_component(self, name: str) -> ManagedProcess:
        """Start one component (again, after :meth:`stop_component`); its log is appended to.

        :param name: one of ``COMPONENTS``
        """
        assert self.processes is not None, "prepare() first"
        airflow = str(venv_bin() / "airflow")
        port = str(self.api_port)
        commands = {
            "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", port],
            "scheduler": [airflow, "scheduler"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer"],
            "celery-worker": [
                airflow,
                "celery",
                "worker",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
            ],
        }
        env = self.worker_environment() if name == "celery-worker" else self.environment()
        return self.processes.start(name, commands[name], env)

    def stop_component(self, name: str, sig: signal.Signals, grace: float = 60) -> float:
        """Send ``sig`` to a component's process group, wait for it to end; return the seconds.

        Only SIGKILL takes every child with it at once: after SIGTERM the group gets ``grace``
        seconds to shut down cleanly, then whatever is left is killed.

        :param name: one of ``COMPONENTS``
        :param sig: e.g. ``signal.SIGKILL`` (a machine lost) or ``signal.SIGTERM`` (a clean stop)
        :param grace: seconds a SIGTERM may take
        """
        assert self.processes is not None, "prepare() first"
        return self.processes.stop(name, sig, grace)

    def component(self, name: str) -> ManagedProcess:
        """Return the running process of a component.

        :param name: one of ``COMPONENTS``
        """
        assert self.processes is not None, "prepare() first"
        return self.processes.get(name)

    def wait_healthy(self, timeout: float = 240) -> dict[str, str]:
        """Wait until the health endpoint reports every component healthy and the worker is ready.

        :param timeout: seconds
        """
        assert self.processes is not None
        probe_api = AirflowAPI(self.api_url, ADMIN_USER, self.admin_password)

        def healthy() -> dict[str, str] | None:
            health = probe_api.health()
            states = {
                name: (health.get(name) or {}).get("status", "?") for name in HEALTH_COMPONENTS
            }
            return states if all(state == "healthy" for state in states.values()) else None

        states = wait_until(
            "/api/v2/monitor/health to report every component healthy",
            healthy,
            timeout=timeout,
            interval=2,
            abort=self.processes.dead,
        )
        self.wait_worker_ready(timeout)
        return states

    def wait_worker_ready(self, timeout: float = 240) -> None:
        """Wait until the running Celery worker process has printed ``ready``.

        :param timeout: seconds
        """
        assert self.processes is not None
        worker = self.component("celery-worker")
        wait_until(
            "the Celery worker to report ready",
            lambda: re.search(r"celery@\S+ ready", worker.log_text(since_start=True)),
            timeout=timeout,
            interval=1,
            abort=self.processes.dead,
        )

    def scheduler_saw_deferral(self, dag_id: str, run_id: str, task_id: str) -> bool:
        """Return whether the scheduler has taken in the executor's report that a task deferred.

        A worker that defers exits "successfully", and the executor reports that to the
        scheduler. Airflow 3.1's scheduler fails the task when that report is taken in only after
        the trigger fired (apache/airflow#66374, fixed in 3.2.2), so a test that makes the trigger
        fire at once waits for this first, as the real world's slower authorisation does.

        :param dag_id: the DAG
        :param run_id: the run
        :param task_id: the deferred task
        """
        path = self.log_dir / "scheduler.log"
        if not path.exists():
            return False
        finished = re.compile(
            rf"TaskInstance Finished: dag_id={re.escape(dag_id)}, task_id={re.escape(task_id)}, "
            rf"run_id={re.escape(run_id)}, .*\bstate=deferred,"
        )
        return finished.search(path.read_text(errors="replace")) is not None

    def log_tails(self, lines: int = 30) -> dict[str, str]:
        """Return the end of every component log.

        :param lines: lines per component
        """
        return {
            path.stem: tail(path, lines)
            for path in sorted(self.log_dir.glob("*.log"))
            if path.exists()
        }

    def teardown(self) -> None:
        """Stop every process the deployment started, by pid."""
        if self.processes is not None:
            step("stopping Airflow components")
            self.processes.stop_all()
