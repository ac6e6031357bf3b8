"""A small client for the parts of Airflow's REST API (/api/v2) the deployment test drives."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowAPI:
    """Bearer-token client for one api-server.

    :param base_url: e.g. ``http://127.0.0.1:8123``
    :param username: a SimpleAuthManager user
    :param password: that user's password
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._session = requests.Session()
        # Loopback only: never let a proxy variable from the environment route these calls.
        self._session.trust_env = False

    def login(self) -> None:
        """Exchange the username and password for a bearer token (``POST /auth/token``)."""
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._username, "password": self._password},
            timeout=30,
        )
        response.raise_for_status()
        self._session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(
        self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any
    ) -> Any:
        """Call ``/api/v2{path}`` and return the decoded JSON (None for an empty body).

        :param method: HTTP method
        :param path: path under ``/api/v2``
        :param expect: statuses that count as success; others raise ``APIError``
        """
        kwargs.setdefault("timeout", 60)
        response = self._session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if response.status_code not in expect:
            raise APIError(method, path, response.status_code, response.text[:2000])
        if not response.content:
            return None
        return response.json()

    # --- monitor ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Return ``/api/v2/monitor/health`` (no authentication needed)."""
        response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def import_errors(self) -> list[dict[str, Any]]:
        """Return the DAG import errors the dag-processor recorded."""
        return self.request("GET", "/importErrors", params={"limit": 100})["import_errors"]

    # --- connections --------------------------------------------------------------------------

    def put_connection(self, body: dict[str, Any]) -> None:
        """Create a connection in the metadata database, replacing one with the same id.

        :param body: ``connection_id``, ``conn_type``, ``host``, ``login``, ``password``, ``extra``
        """
        connection_id = quote(body["connection_id"], safe="")
        self.request("DELETE", f"/connections/{connection_id}", expect=(204, 404))
        self.request("POST", "/connections", json=body, expect=(201,))

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        """Return a stored connection as the API shows it (password redacted).

        :param connection_id: its id
        """
        return self.request("GET", f"/connections/{quote(connection_id, safe='')}")

    def connection_form(self, conn_type: str) -> dict[str, Any] | None:
        """Return what the api-server gives the UI's connection form for a type (None: unknown).

        :param conn_type: the connection type
        """
        path = "/ui/connections/hook_meta"
        response = self._session.get(f"{self.base_url}{path}", timeout=60)
        if response.status_code != 200:
            raise APIError("GET", path, response.status_code, response.text[:2000])
        return next((h for h in response.json() if h.get("connection_type") == conn_type), None)

    def test_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run the hook's connection test in the api-server; returns ``{"status", "message"}``.

        :param body: the connection, as for :meth:`put_connection`
        """
        return self.request("POST", "/connections/test", json=body)

    # --- DAGs and runs ------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """Return the DAG once the dag-processor has serialized it, else None.

        :param dag_id: its id
        """
        try:
            return self.request("GET", f"/dags/{dag_id}")
        except APIError as exc:
            if exc.status == 404:
                return None
            raise

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG.

        :param dag_id: its id
        """
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a manual run and return its run id.

        :param dag_id: the DAG
        :param conf: the run's params
        """
        body = {"logical_date": None, "conf": conf or {}}
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return run["dag_run_id"]

    def list_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Return the DAG's runs, newest first.

        :param dag_id: the DAG
        """
        response = self.request(
            "GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-start_date", "limit": 50}
        )
        return response["dag_runs"]

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Return one run.

        :param dag_id: the DAG
        :param run_id: the run
        """
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return every task instance of a run (mapped ones included).

        :param dag_id: the DAG
        :param run_id: the run
        """
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path, params={"limit": 1000})["task_instances"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> str:
        """Return a task instance's log as text, one line per structured log entry.

        :param dag_id: the DAG
        :param run_id: the run
        :param task_id: the task
        :param try_number: the attempt (1-based)
        :param map_index: for mapped tasks
        """
        path = (
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/logs/{try_number}"
        )
        response = self.request(
            "GET",
            path,
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        return render_log_content(response.get("content") or [])


def render_log_content(content: list[Any]) -> str:
    """Turn the structured log entries of the log endpoint into readable text.

    :param content: ``content`` of the log response (dicts with ``event`` and extra keys, or strings)
    """
    lines = []
    for entry in content:
        if not isinstance(entry, dict):
            lines.append(str(entry))
            continue
        extra = {
            k: v for k, v in entry.items() if k not in {"event", "timestamp", "level", "logger"}
        }
        line = f"{entry.get('level', '')} {entry.get('event', '')}".strip()
        if extra:
            line += " " + json.dumps(extra, default=str)
        lines.append(line)
    return "\n".join(lines)


class APIError(Exception):
    """The api-server answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} /api/v2{path} answered {status}: {body}")
        self.status = status
        self.body = body
