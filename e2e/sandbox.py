"""The d6 sandbox as the deployment test uses it: a separate process and its control API."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import requests

from e2e.harness import ManagedProcess, ProcessSet, venv_bin, wait_for_url_line

USERNAME = "e2e-integrator"
# A small district keeps the finance export's mapped tasks few; it still holds client integrations
# in every state.
SCHOOLS = 6
LEARNERS_PER_SCHOOL = 40


@dataclass
class Sandbox:
    """A running ``d6-sandbox`` process."""

    process: ManagedProcess
    base_url: str  # the d6 API, e.g. http://127.0.0.1:PORT/api
    username: str
    password: str

    @property
    def control_url(self) -> str:
        """Return the root of the control API (``/_sandbox/``)."""
        return self.base_url.rsplit("/api", 1)[0] + "/_sandbox"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.control_url}/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def data(self, collection: str) -> list[dict[str, Any]]:
        """Return the sandbox's ground truth for a collection.

        :param collection: e.g. ``schools``, ``client_integrations``
        """
        body = self._call("GET", f"data/{collection}")
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def authorise(self, school_id: int, api_type_id: int) -> dict[str, Any]:
        """Do the school's side of onboarding: authorise us for the API type.

        :param school_id: the school
        :param api_type_id: the API type
        """
        return self._call(
            "POST", "authorise", json={"school_id": school_id, "api_type_id": api_type_id}
        )

    def deauthorise(self, school_id: int, api_type_id: int) -> dict[str, Any]:
        """Withdraw the school's authorisation (the pair is no longer listed).

        :param school_id: the school
        :param api_type_id: the API type
        """
        return self._call(
            "POST", "deauthorise", json={"school_id": school_id, "api_type_id": api_type_id}
        )

    def school_data(self, collection: str, school_id: int) -> list[dict[str, Any]]:
        """Return one school's ground truth for a collection (``learners``, ``notes``, ...).

        :param collection: a per-school collection
        :param school_id: the school
        """
        body = self._call("GET", f"data/{collection}", params={"school_id": school_id})
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def requests_log(self) -> list[dict[str, Any]]:
        """Return the d6 requests received since the log was last cleared, oldest first."""
        return self._call("GET", "requests")

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "requests", json={})

    def set_faults(self, plan: dict[str, Any]) -> None:
        """Replace the fault plan (``{"rate", "kinds", "script", "retry_after", ...}``).

        :param plan: as ``POST /_sandbox/faults`` takes it
        """
        self._call("POST", "faults", json=plan)

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self._call("DELETE", "faults", json={})

    def configure(self, **settings: Any) -> None:
        """Change run-time settings, e.g. ``latency_ms``.

        :param settings: as ``POST /_sandbox/config`` takes them
        """
        self._call("POST", "config", json=settings)

    def integration(self, school_id: int, api_type_id: int) -> dict[str, Any] | None:
        """Return the sandbox's record of one pair, or None when the school has not authorised it.

        :param school_id: the school
        :param api_type_id: the API type
        """
        for record in self.data("client_integrations"):
            if int(record["school_id"]) == school_id and int(record["api_type_id"]) == api_type_id:
                return record
        return None


def start_sandbox(
    processes: ProcessSet, schools: int = SCHOOLS, learners_per_school: int = LEARNERS_PER_SCHOOL
) -> Sandbox:
    """Start ``d6-sandbox --port 0 --rate-limit 0`` with a fresh password; wait for its URL.

    :param processes: where the process is registered, to be stopped with the rest
    :param schools: schools in the district
    :param learners_per_school: learners generated per school
    """
    password = secrets.token_urlsafe(18)
    env = dict(os.environ)
    # The password goes through the environment, not argv, which any user can read from ps.
    env["D6_SANDBOX_PASSWORD"] = password
    env["PYTHONUNBUFFERED"] = "1"
    argv = [
        str(venv_bin() / "d6-sandbox"),
        "--port",
        "0",
        "--rate-limit",
        "0",
        "--username",
        USERNAME,
        "--schools",
        str(schools),
        "--learners-per-school",
        str(learners_per_school),
    ]
    process = processes.start("d6-sandbox", argv, env)
    url = wait_for_url_line(process, r"d6 sandbox listening on (https?://\S+)")
    return Sandbox(process, url, USERNAME, password)
