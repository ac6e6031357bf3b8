"""The sandbox server: d6's routes behind auth, rate limit and faults, plus the control API.

Built on aiohttp's low-level server (one handler, a dict of routes, no middlewares) so that the
sandbox is never the slow side of a benchmark. All state lives on the server's event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import time
from collections import deque
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError

from d6_sandbox import adminplus, curriculum, finance, settings
from d6_sandbox.data import API_TYPES, District, Integration
from d6_sandbox.faults import IMMEDIATE, FaultPlan, truncate
from d6_sandbox.protocol import (
    NOT_AUTHORISED,
    D6Failure,
    D6Reply,
    Handler,
    RequestContext,
    Route,
    api_version,
    bad_credentials,
    is_int_text,
    json_response,
    not_activated,
    not_authorised,
    rate_limited,
    route_not_found,
    validation_failed,
)
from d6_sandbox.ratelimit import RateLimiter

__all__ = ["NOT_AUTHORISED", "PROFILES", "ROUTES", "Handler", "Route", "Sandbox", "start_server"]

SCHOOL_HEADER = "HTTP-X-SCHOOLID"
_VERSION = re.compile(r"v\d+\Z")
LOG_LIMIT = 200_000
# Write bodies up to this size are kept in the request log (d6 writes are far smaller).
LOGGED_BODY_BYTES = 16 * 1024

# What differs between the service as documented and as integrators meet it live.
#   live: the documented v2 activation route (PATCH/POST /v2/settings/clientintegrations)
#         answers route_not_found; activate with PATCH /v1/settings/clients/{school_id}.
#   docs: every documented route answers as the docs say.
PROFILES: dict[str, dict[str, Any]] = {
    "live": {"v2_activation_route": False},
    "docs": {"v2_activation_route": True},
}
# The name Get Client Integrations gives API type 8: the docs' "Admin+ API", or the
# "d6 Integrate API" integrators saw on their live accounts.
TYPE8_LABELS = {"docs": "Admin+ API", "live": "d6 Integrate API"}
# Rate limiting of requests whose credentials are wrong: they never touch the integrator's
# bucket; they share one bucket per client address at the same rate (d6's rule is a [gap]).
UNAUTHENTICATED_BUCKET = "\x00unauthenticated "


_NOTES = "v2/finplus/debtmanagement/debtornotes"
_FIN = "v2/finplus/debtmanagement"
_ALL = ("GET", "POST", "PATCH", "DELETE")
ROUTES: dict[str, Route] = {
    "v2/settings/clientintegrations": Route(
        {
            "GET": settings.get_client_integrations,
            "POST": settings.change_client_integration_state,
            "PATCH": settings.change_client_integration_state,
        },
        school_scoped=False,
    ),
    "v1/settings/clients": Route(
        {"GET": settings.v1_get_clients},
        {"GET": settings.v1_get_clients, "PATCH": settings.v1_change_client_state},
        school_scoped=False,
        id_name="school_id",
    ),
    f"{_NOTES}/communicationtypes": Route(
        {"GET": finance.get_communication_types}, {"GET": finance.get_communication_types}
    ),
    f"{_NOTES}/notetypes": Route({"GET": finance.get_note_types}, {"GET": finance.get_note_types}),
    f"{_NOTES}/notes": Route(
        dict.fromkeys(_ALL, finance.notes),
        dict.fromkeys(("GET", "PATCH", "DELETE"), finance.notes),
        id_name="note_id",
    ),
    f"{_NOTES}/promisetopays": Route(
        {"GET": finance.promises_to_pay, "DELETE": finance.promises_to_pay},
        {"GET": finance.promises_to_pay, "DELETE": finance.promises_to_pay},
        id_name="promise_to_pay_id",
    ),
    f"{_FIN}/ageanalysis": Route({"GET": finance.age_analysis}),
    f"{_FIN}/financialtransactions": Route({"GET": finance.financial_transactions}),
    f"{_FIN}/schools": Route(
        {"GET": finance.schools}, {"GET": finance.schools}, school_scoped=False, id_name="school_id"
    ),
    f"{_FIN}/accountablepersons": Route(
        {"GET": finance.accountable_persons},
        {"GET": finance.accountable_persons},
        id_name="accountable_person_id",
    ),
    f"{_FIN}/learners": Route(
        {"GET": finance.learners}, {"GET": finance.learners}, id_name="learner_id"
    ),
    f"{_FIN}/transactiontypes": Route(
        {"GET": finance.get_transaction_types}, {"GET": finance.get_transaction_types}
    ),
    f"{_FIN}/transactioncategories": Route(
        {"GET": finance.get_transaction_categories}, {"GET": finance.get_transaction_categories}
    ),
}
# v1 Admin+ and Curriculum+: the school id (or a global lookup's optional id) is the last segment.
for _path, (_collection, _item, _id_name, _api) in {
    **adminplus.ROUTES,
    **curriculum.ROUTES,
}.items():
    ROUTES[_path] = Route(
        {"GET": _collection} if _collection else {},
        {"GET": _item},
        school_scoped=False,
        id_name=_id_name,
        school_in_path=_api is not None,
        api_type_id=_api,
    )


class DroppedConnection(Exception):
    """Raised to end a request with the connection aborted and no response."""


class Sandbox:
    """The state of one sandbox: district, settings, faults, rate limiter and request log."""

    def __init__(
        self,
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
        max_allowed_limit: int = 50,
        default_limit: int = 10,
        activation_delay_s: float = 0.0,
        profile: str = "live",
        type8_label: str = "docs",
    ) -> None:
        if not 1 <= default_limit <= max_allowed_limit:
            raise ValueError("default_limit must be between 1 and max_allowed_limit")
        _check_choice("profile", profile, PROFILES)
        _check_choice("type8_label", type8_label, TYPE8_LABELS)
        self._username = username.encode()
        self._password = password.encode()
        self.seed = seed
        self.district = District(seed, schools, learners_per_school)
        self._initial_config: dict[str, Any] = {
            "profile": profile,
            **PROFILES[profile],
            "type8_label": type8_label,
            "rate_limit": float(rate_limit),
            "latency_ms": float(latency_ms),
            "max_allowed_limit": max_allowed_limit,
            "default_limit": default_limit,
            "activation_delay_s": float(activation_delay_s),
        }
        self._initial_faults: dict[str, Any] = {"rate": fault_rate, "kinds": fault_kinds}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.limiter = RateLimiter(rate_limit)
        self.reset(reseed=False)

    def __repr__(self) -> str:  # never show the credentials
        return f"<Sandbox seed={self.seed} schools={self.district.school_count}>"

    def reset(self, reseed: bool = True) -> None:
        """Return to the seeded state: data, settings, faults; clear the log."""
        if reseed:
            self.district.reset()
        self.config = dict(self._initial_config)
        self.limiter.rate = self.config["rate_limit"]
        self.faults = FaultPlan.from_json(self._initial_faults, seed=self.seed)
        self.log.clear()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply runtime settings (``None`` values are ignored); raise ValueError on a bad one.

        ``profile`` sets the settings of that profile first; settings given with it win.
        """
        merged = dict(self.config)
        for name in changes:
            if name not in merged:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(merged))}")
        profile = changes.get("profile")
        if profile is not None:
            _check_choice("profile", profile, PROFILES)
            merged.update(profile=profile, **PROFILES[profile])
        for name, value in changes.items():
            if value is None or name == "profile":
                continue
            if name == "v2_activation_route":
                if not isinstance(value, bool):
                    raise ValueError("v2_activation_route must be true or false")
                merged[name] = value
            elif name == "type8_label":
                _check_choice(name, value, TYPE8_LABELS)
                merged[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                merged[name] = type(merged[name])(value)
        if not 1 <= merged["default_limit"] <= merged["max_allowed_limit"]:
            raise ValueError("default_limit must be between 1 and max_allowed_limit")
        if merged["rate_limit"] < 0 or merged["latency_ms"] < 0 or merged["activation_delay_s"] < 0:
            raise ValueError("rate_limit, latency_ms and activation_delay_s must be >= 0")
        if merged["rate_limit"] != self.config["rate_limit"]:
            self.limiter.rate = merged["rate_limit"]
        self.config = merged
        return merged

    def api_type_name(self, api_type_id: int) -> str:
        """Return the name Get Client Integrations shows for *api_type_id*."""
        if api_type_id == 8:
            return TYPE8_LABELS[self.config["type8_label"]]
        return API_TYPES[api_type_id]

    def integration_record(self, integration: Integration) -> dict[str, Any]:
        """Render *integration* as Get Client Integrations does, with the configured labels."""
        record = self.district.integration_record(integration)
        record["api_type"] = self.api_type_name(integration.api_type_id)
        return record

    @property
    def page_settings(self) -> dict[str, int]:
        """Return the page-size settings pagination reads."""
        return self.config

    def route_not_found_response(self) -> web.Response:  # kept for existing handlers
        """Answer as d6 does for a route it does not serve."""
        return route_not_found()

    def _authenticated(self, headers: Any) -> bool:
        username = headers.get("HTTP-X-USERNAME", "").encode()
        password = headers.get("HTTP-X-PASSWORD", "").encode()
        # Compare both in constant time so neither leaks through timing.
        return hmac.compare_digest(username, self._username) & hmac.compare_digest(
            password, self._password
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve one request: the control API, or a d6 call through faults, limits and routes."""
        path = request.path
        refused = refuse_foreign_request(request)
        if refused is not None:
            status, message = refused
            if path.startswith("/_sandbox/"):
                return json_response({"error": message}, status)
            return D6Failure(status, message).render(api_version(path))
        if path.startswith("/_sandbox/"):
            from d6_sandbox.control import handle_control

            return await handle_control(self, request)
        method = request.method
        school_header = request.headers.get(SCHOOL_HEADER)
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": dict(request.query),
            "status": None,
            "fault": None,
            "school_id": _int_or_none(school_header),
            "ts": time.time(),
        }
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            # What a write asked for, so a test can tell which pair or note a request changed.
            entry["body"] = await _logged_body(request)
        self.log.append(entry)
        fault = self.faults.choose(method, path) if self.faults.rate or self.faults.script else None
        entry["fault"] = fault
        if fault == "drop_before":
            raise DroppedConnection
        if fault in IMMEDIATE:
            response = self.faults.immediate_response(fault, api_version(path))
            entry["status"] = response.status
            return response
        if fault == "latency":
            await asyncio.sleep(self.faults.latency_ms / 1000)
        elif fault == "slow":
            # Read the body first, as d6 would: the client gives up while the request is held,
            # yet the write still takes effect afterwards (the hard case for exactly-once).
            await request.read()
            await asyncio.sleep(self.faults.slow_seconds)
        if self.config["latency_ms"]:
            await asyncio.sleep(self.config["latency_ms"] / 1000)
        response = await self._answer(request, method, path, school_header)
        entry["status"] = response.status
        if fault == "slow_after":
            await asyncio.sleep(self.faults.slow_seconds)
        if fault == "drop":
            raise DroppedConnection
        if fault == "truncated" and response.status == 200:
            response = truncate(response)
        return response

    async def _answer(
        self, request: web.BaseRequest, method: str, path: str, school_header: str | None
    ) -> web.Response:
        version = api_version(path)
        try:
            return await self._dispatch(request, method, path, school_header, version)
        except D6Failure as failure:
            return failure.render(version)
        except D6Reply as reply:
            return reply.response

    async def _dispatch(
        self,
        request: web.BaseRequest,
        method: str,
        path: str,
        school_header: str | None,
        version: str,
    ) -> web.Response:
        # Authenticate first, then count: a caller with a wrong password must not use up the
        # integrator's quota. Unauthenticated requests share one bucket per client address.
        authenticated = self._authenticated(request.headers)
        if authenticated:
            bucket = self._username.decode()
        else:
            bucket = UNAUTHENTICATED_BUCKET + (request.remote or "")
        wait = self.limiter.acquire(bucket)
        if wait:
            raise rate_limited(str(wait))
        if not authenticated:
            raise bad_credentials()
        parts = path.split("/")
        if len(parts) < 2 or parts[1] != "api":
            return route_not_found()
        if len(parts) < 3 or not _VERSION.match(parts[2]):
            # [field] A path without a version segment answered 200 with an empty body.
            return web.Response(status=200, body=b"", content_type="text/html")
        rest = "/".join(parts[2:]).rstrip("/")
        item_text = None
        route = ROUTES.get(rest)
        if route is None:
            prefix, _, item_text = rest.rpartition("/")
            route = ROUTES.get(prefix)
            if route is None or not route.item_methods:
                return route_not_found()
        handler = (route.item_methods if item_text is not None else route.methods).get(method)
        if handler is None:
            return route_not_found()
        school_id = self._school(route, school_header)
        item_id = None
        if item_text is not None:
            if not is_int_text(item_text):
                raise validation_failed({route.id_name: f"The {route.id_name} must be an integer."})
            item_id = int(item_text)
        if route.school_in_path:
            school_id, item_id = self._path_school(route, item_id), None
        body = await request.read() if method in ("POST", "PATCH", "PUT", "DELETE") else b""
        ctx = RequestContext(self, method, path, request.query, item_id, school_id, body, version)
        return await handler(ctx)

    def _school(self, route: Route, school_header: str | None) -> int | None:
        if not route.school_scoped:
            return None
        if school_header is None or not school_header.strip():
            raise validation_failed({SCHOOL_HEADER: f"The {SCHOOL_HEADER} header is required."})
        school_id = _int_or_none(school_header)
        if school_id is None:
            raise validation_failed(
                {SCHOOL_HEADER: f"The {SCHOOL_HEADER} header must be an integer."}
            )
        if school_id not in self.district.schools or not self.district.has_finance_access(
            school_id, self.config["activation_delay_s"]
        ):
            raise not_authorised()
        return school_id

    def _path_school(self, route: Route, school_id: int | None) -> int:
        """Check the school of a v1 ``.../{school_login_id}`` route for the route's module."""
        if school_id is None:  # pragma: no cover - routes declare item_methods only
            raise D6Reply(route_not_found())
        api_type_id = route.api_type_id
        integration = (
            self.district.integrations.get((school_id, api_type_id))
            if api_type_id is not None
            else None
        )
        if school_id not in self.district.schools or (
            api_type_id is not None and integration is None
        ):
            raise not_authorised()
        if route.require_activation and integration is not None:
            settled = (
                time.monotonic() - integration.activated_at >= self.config["activation_delay_s"]
            )
            if not (integration.activated and settled):
                raise not_activated(API_TYPES[integration.api_type_id])
        return school_id


def _undecodable_header(headers: Any) -> str | None:
    """Return the name of the first header whose value is not UTF-8 text, or None."""
    for name, value in headers.items():
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # aiohttp keeps undecodable bytes as lone surrogates
                return name.encode("ascii", "backslashreplace").decode()
    return None


def _allowed_hosts(request: web.BaseRequest) -> set[str]:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return set()
    address, port = sockname[0], sockname[1]
    names = {address, "localhost"}
    if ipaddress.ip_address(address).is_loopback:
        names |= {"127.0.0.1", "::1"}
    hosts = {f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names}
    if port in (80, 443):  # a client may leave out the scheme's default port
        hosts |= {f"[{n}]" if ":" in n else n for n in names}
    return hosts


def refuse_foreign_request(request: web.BaseRequest) -> tuple[int, str] | None:
    """Say why a request must be refused before it is served, or None to serve it.

    - A header that is not UTF-8 text: 400 (naming the header, never echoing its value).
    - DNS rebinding: the ``Host`` header must be the address and port the sandbox listens on
      (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT`` on loopback), else 421.
    The control API adds its own checks against cross-site requests (see ``control.py``).
    """
    bad = _undecodable_header(request.headers)
    if bad is not None:
        return 400, f"The {bad} header is not valid UTF-8."
    host = request.headers.get("Host", "").strip().lower()
    if host not in _allowed_hosts(request):
        return 421, "The Host header must name the address and port the d6 sandbox listens on."
    return None


def _check_choice(name: str, value: Any, allowed: dict[str, Any]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


async def _logged_body(request: web.BaseRequest) -> Any:
    """Return a write's JSON body for the request log (None when empty, not JSON or large)."""
    raw = await request.read()  # aiohttp keeps the body: the route handler reads it again
    if not raw or len(raw) > LOGGED_BODY_BYTES:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if is_int_text(text) else None


def make_server(sandbox: Sandbox) -> web.Server:
    """Wrap *sandbox* in aiohttp's low-level server, turning a dropped connection into an abort."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await sandbox.handle(request)
        except DroppedConnection:
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: the transport is gone before any byte is written.
            return web.Response(status=599)

    return _Server(handler, access_log=None)


_log = logging.getLogger("d6_sandbox")


class _RequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, minus the echo of a request it could not parse.

    aiohttp answers a malformed request (a control character in a header, say) with a 400 whose
    body quotes the offending header line, and logs that line with a traceback: for a password
    with a control character, both would hold the password. Here neither does.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError) and status < 500:
            _log.warning(
                "refused a malformed HTTP request from %s (%s)", request.remote, type(exc).__name__
            )
            saved, self.logger = self.logger, _SILENT
            try:
                return super().handle_error(
                    request, status, None, f"{status} Bad Request: the request is not valid HTTP"
                )
            finally:
                self.logger = saved
        return super().handle_error(request, status, exc, message)


_SILENT = logging.getLogger("d6_sandbox.silent")
_SILENT.propagate = False
_SILENT.addHandler(logging.NullHandler())


class _Server(web.Server):
    def __call__(self) -> _RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)


async def start_server(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, ssl_context: Any = None
) -> tuple[web.ServerRunner, int]:
    """Start serving *sandbox*; return the runner (for ``cleanup()``) and the bound port."""
    runner = web.ServerRunner(make_server(sandbox), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound
