"""Run a sandbox from tests and scripts: a context manager yielding its URL and a control client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from d6_sandbox.__main__ import PASSWORD_ENV

# The first ground-truth read of a large school builds its data (about 11 CPU-seconds for 20,000
# learners), which takes far longer on a loaded machine: this only guards against a hang.
CONTROL_TIMEOUT_S = 180.0
_LISTENING = re.compile(r"d6 sandbox listening on (https?://\S+)/api")
START_TIMEOUT_S = 60.0


class SandboxControl:
    """Plain HTTP client of the control API under ``/_sandbox/``."""

    def __init__(self, root_url: str, verify: bool | str = True) -> None:
        self.root_url = root_url.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False  # the sandbox is on loopback; never route through a proxy
        self._session.verify = verify
        self._lock = threading.Lock()  # requests.Session is not documented as thread-safe

    def _call(
        self,
        method: str,
        name: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        if body is None and method != "GET":
            body = {}  # the control API wants a JSON body (and its Content-Type) on every write
        with self._lock:
            response = self._session.request(
                method,
                f"{self.root_url}/_sandbox/{name}",
                json=body,
                params=params,
                timeout=CONTROL_TIMEOUT_S,
            )
        if response.status_code >= 400:
            raise RuntimeError(
                f"sandbox control {method} {name}: HTTP {response.status_code}: {response.text}"
            )
        return response.json()

    def authorise(self, school_id: int, api_type_id: int) -> dict[str, Any]:
        """Authorise the integrator for a school and API type, as the school would in d6+ SAMS.

        :param school_id: the school.
        :param api_type_id: the API type (8 or 9).
        """
        return self._call("POST", "authorise", {"school_id": school_id, "api_type_id": api_type_id})

    def deauthorise(self, school_id: int, api_type_id: int) -> dict[str, Any]:
        """Withdraw a school's authorisation (the pair disappears from Get Client Integrations)."""
        return self._call(
            "POST", "deauthorise", {"school_id": school_id, "api_type_id": api_type_id}
        )

    def set_faults(
        self,
        rate: float = 0.0,
        kinds: list[str] | None = None,
        script: list[dict[str, Any]] | None = None,
        retry_after: str = "1",
        **options: Any,
    ) -> dict[str, Any]:
        """Inject faults: a *script* for the next matching requests first, then random ones.

        :param rate: fraction of d6 requests that get a random fault of *kinds*.
        :param kinds: fault kinds for random faults (default 500, 502, 503, 429).
        :param script: ``{"kind", "times", "method"?, "path"?}`` entries, consumed in order.
        :param retry_after: the Retry-After value of injected 429 and 503 replies.
        :param options: ``slow_seconds`` (hold of "slow", default 5), ``latency_ms`` (of "latency").
        """
        body = {
            "rate": rate,
            "kinds": kinds,
            "script": script or [],
            "retry_after": retry_after,
            **options,
        }
        return self._call("POST", "faults", body)

    def clear_faults(self) -> dict[str, Any]:
        """Stop injecting faults."""
        return self._call("DELETE", "faults")

    def configure(
        self,
        rate_limit: float | None = None,
        latency_ms: float | None = None,
        v2_activation_route: bool | None = None,
        max_allowed_limit: int | None = None,
        default_limit: int | None = None,
        activation_delay_s: float | None = None,
        profile: str | None = None,
        type8_label: str | None = None,
    ) -> dict[str, Any]:
        """Change runtime settings; ``None`` leaves one as it is. Return the whole configuration.

        :param profile: ``live`` or ``docs`` (sets ``v2_activation_route``; given settings win).
        :param type8_label: ``docs`` ("Admin+ API") or ``live`` ("d6 Integrate API").
        """
        changes = {
            "profile": profile,
            "type8_label": type8_label,
            "rate_limit": rate_limit,
            "latency_ms": latency_ms,
            "v2_activation_route": v2_activation_route,
            "max_allowed_limit": max_allowed_limit,
            "default_limit": default_limit,
            "activation_delay_s": activation_delay_s,
        }
        return self._call("POST", "config", {k: v for k, v in changes.items() if v is not None})

    def config(self) -> dict[str, Any]:
        """Return the current runtime settings."""
        return self._call("GET", "config")

    def requests(self) -> list[dict[str, Any]]:
        """Return the log of d6 requests received, oldest first (never header values)."""
        return self._call("GET", "requests")

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "requests")

    def data(self, collection: str, school_id: int | None = None) -> list[dict[str, Any]]:
        """Return the ground truth of *collection*: one school's, or all schools' with ids."""
        return self._call(
            "GET", f"data/{collection}", params={"school_id": school_id} if school_id else None
        )

    def reset(self) -> None:
        """Return the sandbox to its seeded state; clear the log and faults."""
        self._call("POST", "reset")

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


@dataclass
class SandboxHandle:
    """A running sandbox: where it listens, the credentials it accepts, and its control client."""

    base_url: str
    username: str
    password: str = field(repr=False)
    ca_path: str | None
    control: SandboxControl = field(repr=False)

    @property
    def root_url(self) -> str:
        """Return the server root (``base_url`` without ``/api``)."""
        return self.base_url[: -len("/api")]


class _ThreadServer:
    """The sandbox on its own event loop in a daemon thread."""

    def __init__(self, options: dict[str, Any], tls: bool) -> None:
        from d6_sandbox.app import Sandbox

        self.sandbox = Sandbox(**options)
        self.tls = tls
        self.port = 0
        self.ca_path: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="d6-sandbox", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the sandbox failed to start: {self._error}") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - the starting thread raises it
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from d6_sandbox.app import start_server

        ssl_context = None
        if self.tls:
            from d6_sandbox.tls import make_tls_context

            ssl_context, self.ca_path = make_tls_context()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner, self.port = await start_server(self.sandbox, "127.0.0.1", 0, ssl_context)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may already have ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)


def _start_process(
    options: dict[str, Any], tls: bool
) -> tuple[subprocess.Popen[str], str, str | None, Any]:
    flags = {
        "--seed": options["seed"],
        "--schools": options["schools"],
        "--learners-per-school": options["learners_per_school"],
        "--rate-limit": options["rate_limit"],
        "--latency-ms": options["latency_ms"],
        "--fault-rate": options["fault_rate"],
        "--max-allowed-limit": options["max_allowed_limit"],
        "--default-limit": options["default_limit"],
        "--activation-delay-s": options["activation_delay_s"],
        "--username": options["username"],
        "--profile": options["profile"],
        "--type8-label": options["type8_label"],
    }
    argv = [sys.executable, "-m", "d6_sandbox", "--port", "0"]
    for flag, value in flags.items():
        argv += [flag, str(value)]
    if options["fault_kinds"]:
        argv += ["--fault-kinds", ",".join(options["fault_kinds"])]
    if tls:
        argv.append("--tls")
    # The password goes through the environment, not argv, which other local users can read.
    env = {**os.environ, PASSWORD_ENV: options["password"]}
    # Kept open for the life of the process (closed by run_sandbox); a pipe could fill and block it.
    stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    watchdog = threading.Timer(START_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        ca_path = proc.stdout.readline().strip() if tls and proc.stdout and line else None
    finally:
        watchdog.cancel()
    match = _LISTENING.match(line.strip())
    if not match:
        proc.kill()
        proc.wait()
        stderr.seek(0)
        raise RuntimeError(f"d6-sandbox did not start: {stderr.read()[-2000:]}")
    return proc, match.group(1), ca_path, stderr


@contextmanager
def run_sandbox(
    *,
    username: str = "sandbox-user",
    password: str = "sandbox-pass",
    seed: int = 1,
    schools: int = 25,
    learners_per_school: int = 400,
    rate_limit: float = 0,
    latency_ms: float = 0,
    fault_rate: float = 0.0,
    fault_kinds: list[str] | None = None,
    tls: bool = False,
    max_allowed_limit: int = 50,
    default_limit: int = 10,
    activation_delay_s: float = 0.0,
    profile: str = "live",
    type8_label: str = "docs",
    process: bool = False,
) -> Iterator[SandboxHandle]:
    """Start a sandbox on a free loopback port; stop it when the block ends.

    :param username: the integrator username it accepts.
    :param password: the integrator password it accepts.
    :param seed: seed of the generated district.
    :param schools: number of schools (ids from 1000).
    :param learners_per_school: learners generated per school (lazily).
    :param rate_limit: requests per second per credential; 0 turns limiting off.
    :param latency_ms: delay added to every d6 response.
    :param fault_rate: fraction of d6 requests given a random fault of *fault_kinds*.
    :param fault_kinds: kinds for *fault_rate* (default 500, 502, 503, 429).
    :param tls: serve https with a generated CA (``handle.ca_path``).
    :param max_allowed_limit: largest page size.
    :param default_limit: page size when none is asked for.
    :param activation_delay_s: seconds after activation before Finance+ answers for a school.
    :param profile: ``live`` (default: the v2 activation route answers ``route_not_found``, as
        integrators report of the live service) or ``docs`` (every route as documented).
    :param type8_label: the name of API type 8: ``docs`` ("Admin+ API") or ``live``
        ("d6 Integrate API", as seen on live accounts).
    :param process: run ``d6-sandbox`` as a subprocess instead of a thread of this process.
    """
    options = {
        "username": username,
        "password": password,
        "seed": seed,
        "schools": schools,
        "learners_per_school": learners_per_school,
        "rate_limit": rate_limit,
        "latency_ms": latency_ms,
        "fault_rate": fault_rate,
        "fault_kinds": fault_kinds,
        "max_allowed_limit": max_allowed_limit,
        "default_limit": default_limit,
        "activation_delay_s": activation_delay_s,
        "profile": profile,
        "type8_label": type8_label,
    }
    if process:
        proc, root, ca_path, stderr = _start_process(options, tls)
        control = SandboxControl(root, verify=ca_path or True)
        try:
            yield SandboxHandle(f"{root}/api", username, password, ca_path, control)
        finally:
            control.close()
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
            stderr.close()
        return
    server = _ThreadServer(options, tls)
    server.start()
    root = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
    control = SandboxControl(root, verify=server.ca_path or True)
    try:
        yield SandboxHandle(f"{root}/api", username, password, server.ca_path, control)
    finally:
        control.close()
        server.stop()
