"""D6Hook: the one transport to the d6+ Integrate API (``D6AsyncHook`` is its twin for triggers).

Absorbs d6's quirks so that nobody above it sees them: per-endpoint API versions, the two
credential headers, the school header, cursor pagination, v1 and v2 error bodies, ids sent as
strings, the contradictory Change Client Integration State route, and rate limits. The decisions
live in ``_core`` (shared with the async hook); this module only sends with ``requests``.
"""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3
import urllib3.exceptions
from airflow.providers.http.hooks.http import HttpHook
from requests.utils import get_environ_proxies
from urllib3.exceptions import NewConnectionError

from airflow_provider_d6._compat import AirflowNotFoundException
from airflow_provider_d6.exceptions import D6Error, D6InputError
from airflow_provider_d6.hooks._adminplus import AdminPlusMethods
from airflow_provider_d6.hooks._client_integrations import ClientIntegrationMethods
from airflow_provider_d6.hooks._config import (
    D6Settings,
    default_verify,
    missing_connection,
    never_proxied,
)
from airflow_provider_d6.hooks._core import (
    IDEMPOTENT_METHODS,
    SCHOOL_HEADER,
    Answer,
    Core,
    D6HookBase,
    Failure,
    FailureKinds,
    Request,
)
from airflow_provider_d6.hooks._curriculum import CurriculumPlusMethods
from airflow_provider_d6.hooks._deadline import WATCHDOG, DeadlineAdapter, current_ticket
from airflow_provider_d6.hooks._debt_management import DebtManagementMethods
from airflow_provider_d6.hooks._endpoints import (
    ENDPOINTS,
    RESOURCE_FIELDS,
    V1_ENDPOINTS,
    Endpoint,
    coerce_ids,
)
from airflow_provider_d6.hooks._form import connection_form_widgets, ui_field_behaviour
from airflow_provider_d6.hooks._limits import CHUNK_BYTES, AnswerTimeout, BodyReader
from airflow_provider_d6.hooks._parse import envelope, parse_response, single
from airflow_provider_d6.hooks._redact import redact
from airflow_provider_d6.hooks._retry import MAYBE_SENT, RetryPolicy
from airflow_provider_d6.hooks._validate import check_filters, check_id
from airflow_provider_d6.hooks.client_integration_state import (
    CLIENT_INTEGRATIONS,
    client_integration_record,
)

if TYPE_CHECKING:
    from airflow_provider_d6.hooks.d6_async import D6AsyncHook

# Operators apply changes from a thread pool of up to 32 workers sharing one hook.
_POOL_SIZE = 32

FAILURES = FailureKinds(
    certificate=(requests.exceptions.SSLError,),
    not_sent=(requests.exceptions.ConnectTimeout, NewConnectionError),
    maybe_sent=(
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        # Raised by urllib3 itself while the body streams in (requests wraps only .content).
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.ReadTimeoutError,
        urllib3.exceptions.SSLError,
    ),
    timeouts=(requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError),
)
# Anything else requests raises (an invalid URL, a bad header value) is not a network failure.
_CATCH = (requests.RequestException, urllib3.exceptions.HTTPError)


class D6Hook(
    D6HookBase,
    HttpHook,
    ClientIntegrationMethods,
    DebtManagementMethods,
    AdminPlusMethods,
    CurriculumPlusMethods,
):
    """Call the d6+ Integrate API through one reusable, thread-safe session.

    The connection is read once, on first use. Options resolve as hook kwargs > connection extras
    > defaults.

    :param d6_conn_id: the Airflow connection of type ``d6``
    :param timeout: seconds to wait for each answer (default 30)
    :param max_attempts: attempts in total per request, the first included, for transient
        failures (default 5; 1 means never retry)
    :param max_retries: the old name of ``max_attempts`` (same meaning; 0 also means one attempt)
    :param requests_per_second: client-side throttle; None means adaptive
    :param activation_route: ``auto`` (v2 then v1 on route_not_found), ``v2`` or ``v1``
    :param verify: TLS verification: True, False or the path of a CA bundle
    :param max_response_bytes: the most one answer may hold once decoded (default 32 MiB)
    :param retry_policy: attempts and backoff; a ``max_attempts`` kwarg overrides its attempts
    :param endpoint_versions: API version per resource, overriding the catalogue's (e.g.
        ``{"parents": "v3"}``) for Admin+/Curriculum+ resources
    """

    hook_name = "d6+ Integrate"

    # Airflow 3.1's connection form asks the hook; 3.2+ reads get_provider_info (see _form).
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden, relabelled and placeholder fields."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the connection form's extra fields (WTForms, for Airflow 3.1)."""
        return connection_form_widgets()

    def __init__(
        self,
        d6_conn_id: str = D6HookBase.default_conn_name,
        *,
        endpoint_versions: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(d6_conn_id, **options)
        # Admin+/Curriculum+ resource -> API version, overriding the catalogue's (see _v1.py).
        self.endpoint_versions = dict(endpoint_versions or {})

    def _base_hook_args(self, d6_conn_id: str) -> dict[str, Any]:
        # No keep-alive adapter from HttpHook: ours is mounted once with a 32-connection pool.
        return {"method": "GET", "http_conn_id": d6_conn_id, "tcp_keep_alive": False}

    def _init_io(self) -> None:
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    # -- connection and session -------------------------------------------------------------

    @property
    def settings(self) -> D6Settings:
        """Return the connection's settings, reading the connection on first use only."""
        return (self._core or self._load()).settings

    @property
    def base_url(self) -> str:
        """Return the d6 base URL (``.../api``) from the connection."""
        return (self._core or self._load()).base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        """Ignore assignments: HttpHook's constructor sets "", the connection decides."""

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy in effect (attempts from kwargs, the connection or defaults)."""
        return (self._core or self._load()).policy

    @property
    def session(self) -> requests.Session:
        """Return the hook's one ``requests.Session`` (created on first use, then reused)."""
        if self._session is None:
            self._load()
        return self._session  # type: ignore[return-value]

    def _load(self) -> Core:
        with self._lock:
            if self._core is not None:
                return self._core
            try:
                conn = self.get_connection(self.d6_conn_id)
            except AirflowNotFoundException:
                raise missing_connection(self.d6_conn_id) from None
            core = self._build_core(conn, self.log)
            settings = core.settings
            self._timeout = settings.timeout
            # Plain http (loopback only) has no certificate to check; a CA-bundle path there would
            # only make requests stat the file on every call.
            https = settings.base_url.startswith("https://")
            self._verify = default_verify(settings.verify) if https else True
            session = requests.Session()
            # The environment is read here once, not on every request (trust_env would redo the
            # proxy and CA lookups per call); an explicit verify then wins over REQUESTS_CA_BUNDLE.
            # Loopback (the sandbox, over plain http) never goes through a proxy, whatever
            # HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY say: a proxy would see the
            # credential headers in clear text.
            session.trust_env = False
            if never_proxied(settings.base_url):
                session.proxies = {}
            else:
                session.proxies = get_environ_proxies(settings.base_url)
            session.verify = self._verify
            session.headers.update(core.session_headers())
            # Its connections attach their socket to the request's deadline (see _attempt).
            adapter = DeadlineAdapter(pool_connections=2, pool_maxsize=_POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
            self._core = core
            return core

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """Return the shared session (HttpHook API); per-call headers are not applied to it."""
        return self.session

    def close(self) -> None:
        """Close the session's pooled connections."""
        if self._session is not None:
            self._session.close()

    # -- transport --------------------------------------------------------------------------

    def _send(self, method: str, path: str, **options: Any) -> Any:
        """Send one request; *options* as ``Core.exchange`` takes them (see ``D6Transport``)."""
        exchange = (self._core or self._load()).exchange(method, path, **options)
        for step in exchange:
            if isinstance(step, Request):
                exchange.outcome = self._attempt(step)
            else:
                time.sleep(step)
        return exchange.result

    def _attempt(self, request: Request) -> Answer | Failure:
        """Send *request* once: d6's answer, or the failure that stopped it.

        The whole answer must arrive within ``timeout`` (a watchdog shuts the socket down when
        it has not: the socket timeout alone bounds each read, not their sum), and its body is
        streamed in and decoded here, refused past ``max_response_bytes`` (``BodyTooLarge``).
        """
        limit = self.settings.max_response_bytes
        with current_ticket(WATCHDOG.start(self._timeout)) as ticket:
            try:
                response = self._session.request(  # type: ignore[union-attr]
                    request.method,
                    request.url,
                    params=request.params,
                    json=request.json,
                    headers=request.headers,
                    timeout=self._timeout,
                    verify=self._verify,
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    reader = BodyReader(
                        response.headers, limit, method=request.method, url=request.url
                    )
                    for chunk in _raw_chunks(response):
                        reader.feed(chunk)
                    body = reader.finish()
                finally:
                    response.close()  # a no-op for a body read to its end (the pool has it)
            except _CATCH as exc:
                return self._late() if ticket.expired else FAILURES.classify(exc)
            if ticket.expired:  # the shut-down socket can look like a body that just ended
                return self._late()
        return Answer(response.status_code, response.headers, body)

    def _late(self) -> Failure:
        late = AnswerTimeout(f"the whole answer did not arrive within {self._timeout:g}s")
        return Failure(MAYBE_SENT, True, late)

    def _iter_endpoint(
        self, endpoint: Endpoint, school_id: int | None, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paginated collection, one page in memory at a time."""
        pages = (self._core or self._load()).pages(endpoint, params)
        while pages.more:
            yield from pages.take(
                self._send("GET", endpoint.path, params=pages.params, school_id=school_id)
            )

    def _list(self, endpoint: Endpoint, school_id: int | None) -> list[dict[str, Any]]:
        url = self.base_url + endpoint.path
        payload = self._send("GET", endpoint.path, school_id=school_id)
        data, _ = envelope(payload, method="GET", url=url)
        return [coerce_ids(record, endpoint) for record in data]

    def _get_one(self, endpoint: Endpoint, school_id: int | None, record_id: Any) -> dict[str, Any]:
        record_id = check_id(record_id, endpoint.id_param or "id")
        path = f"{endpoint.path}/{record_id}"
        payload = self._send("GET", path, school_id=school_id)
        record: dict[str, Any] = coerce_ids(
            single(payload, method="GET", url=self.base_url + path), endpoint
        )
        return record

    def iter_resource(
        self, resource: str, school_id: int | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield the records of *resource* by name (``schools``, ``learners``, ``notes``, ...).

        :param resource: a key of ``RESOURCE_FIELDS``
        :param school_id: the school: required for school-scoped resources; for the others, a
            filter where the resource takes one (``client_integrations``) or the one record with
            that id (``schools``)
        :param filters: the resource's documented filters
        """
        endpoint = ENDPOINTS.get(resource)
        if endpoint is None:
            raise D6InputError(
                f"unknown resource {resource!r}",
                field="resource",
                allowed=", ".join(sorted(ENDPOINTS)),
            )
        if endpoint.name in V1_ENDPOINTS:
            return self._iter_v1_resource(endpoint, school_id, filters)
        if school_id is None or endpoint.school_scoped:
            return self._iter_resource(endpoint, school_id, filters)
        # A resource that is not school-scoped reads a school id as the catalogue says: a filter
        # of its own, or the id of the one record to fetch.
        if "school_id" in endpoint.filters:
            return self._iter_resource(endpoint, None, {**filters, "school_id": school_id})
        if endpoint.id_param == "school_id":
            check_filters(endpoint, filters)
            return iter([self._get_one(endpoint, None, school_id)])
        raise D6InputError(f"{resource} is not read per school", field="school_id", allowed="None")

    def _iter_resource(
        self, endpoint: Endpoint, school_id: Any, filters: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        # Validation happens here, eagerly, so that bad input fails before the first request
        # even though the records are produced lazily by the generator below.
        if endpoint.school_scoped:
            school_id = check_id(school_id, "school_id")
        params = check_filters(endpoint, filters)
        if endpoint.paginated:
            return self._iter_endpoint(endpoint, school_id, params)
        if params:
            raise D6InputError(
                "this resource takes no filters", field=next(iter(params)), allowed="none"
            )
        return iter(self._list(endpoint, school_id))

    # -- HttpHook's entry points, each through the transport above ------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> Any:
        """Call a raw d6 path (HttpHook API) through the transport; return the parsed JSON.

        The throttle, the retry policy and the typed errors apply as to every other call; only
        GET, HEAD, OPTIONS and PUT are re-sent after an ambiguous failure.

        :param endpoint: path below the base URL, e.g. ``v2/settings/clientintegrations``
        :param data: query parameters for GET and HEAD, the JSON body otherwise
        :param headers: only ``HTTP-X-SCHOOLID`` is honoured
        :param extra_options: not used (the connection decides timeouts and TLS)
        :param request_kwargs: ``params`` (query) and ``json`` (body) only
        """
        unknown = set(request_kwargs) - {"params", "json"}
        if unknown:
            raise D6InputError(
                f"run() does not take {', '.join(sorted(unknown))}",
                field=min(unknown),
                allowed="params, json",
            )
        method = self.method
        path = "/" + (endpoint or "").lstrip("/")
        school_id = (headers or {}).get(SCHOOL_HEADER)
        if method in ("GET", "HEAD"):
            params, body = request_kwargs.get("params", data), request_kwargs.get("json")
        else:
            params, body = request_kwargs.get("params"), request_kwargs.get("json", data)
        return self._send(
            method,
            path,
            params=params,
            json=body,
            school_id=school_id,
            idempotent=method in IDEMPOTENT_METHODS,
            allow_empty=method != "GET",
        )

    def run_and_check(
        self,
        session: requests.Session,
        prepped_request: requests.PreparedRequest,
        extra_options: dict[Any, Any],
    ) -> Any:
        """Send a prepared request (HttpHook API) through the transport; return the parsed JSON.

        Only requests to this connection's d6 with a JSON body (or none) are sent: the hook's
        session carries the credentials, which must not travel anywhere else. The *session* and
        *extra_options* arguments are not used; the hook's own session and settings are.

        :param session: ignored (the hook's session is used)
        :param prepped_request: the request: method, URL below the base URL, headers, body
        :param extra_options: ignored
        """
        core = self._core or self._load()
        method = (prepped_request.method or "GET").upper()
        url = prepped_request.url or ""
        base = core.base_url + "/"
        if not url.startswith(base):
            raise D6InputError(
                "run_and_check() sends only to this connection's d6",
                field="prepped_request.url",
                allowed=f"URLs below {core.base_url}",
            )
        parts = urlsplit(url)
        path = parts.path[len(urlsplit(core.base_url).path) :]
        params = parse_qsl(parts.query, keep_blank_values=True) or None
        body = prepped_request.body
        payload: Any = None
        if body:
            content_type = str(prepped_request.headers.get("Content-Type") or "")
            if "json" not in content_type.lower() or not isinstance(body, (bytes, str)):
                raise D6InputError(
                    "d6 takes JSON bodies only",
                    field="prepped_request.body",
                    allowed="application/json",
                )
            try:
                payload = jsonlib.loads(body)
            except ValueError:
                raise D6InputError(
                    "the body is not valid JSON", field="prepped_request.body"
                ) from None
        return self._send(
            method,
            path,
            params=params,
            json=payload,
            school_id=prepped_request.headers.get(SCHOOL_HEADER),
            idempotent=method in IDEMPOTENT_METHODS,
            allow_empty=method != "GET",
        )

    def run_with_advanced_retry(
        self, _retry_args: dict[Any, Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run ``run`` under tenacity's *_retry_args* (HttpHook API), for idempotent methods only.

        Every attempt goes through the transport (which retries transient failures itself). A
        POST, PATCH or DELETE is refused: tenacity would send it again after any error, which
        could write twice; ``run`` alone re-sends a write only when d6 certainly never saw it.
        """
        if self.method not in IDEMPOTENT_METHODS:
            raise D6InputError(
                f"run_with_advanced_retry() would re-send a {self.method} blindly; use run()",
                field="method",
                allowed=", ".join(sorted(IDEMPOTENT_METHODS)),
            )
        return super().run_with_advanced_retry(_retry_args, *args, **kwargs)

    def check_response(self, response: requests.Response) -> None:
        """Raise the typed ``D6Error`` for a failed answer (HttpHook API); return None on success.

        :param response: a ``requests`` response from d6
        """
        if response.status_code < 300:
            return
        request = response.request
        parse_response(
            response.status_code,
            response.headers,
            response.content,
            method=(request.method if request is not None else None) or "GET",
            url=(response.url or "").split("?", 1)[0],
        )

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call and say what the credentials can see."""
        try:
            core = self._core or self._load()
            limit = core.limits.get(CLIENT_INTEGRATIONS.name)
            payload = self._send(
                "GET", CLIENT_INTEGRATIONS.path, params={"limit": limit} if limit else None
            )
            data, meta = envelope(
                payload, method="GET", url=core.base_url + CLIENT_INTEGRATIONS.path
            )
        except D6Error as err:
            return False, str(err)
        except Exception as err:  # noqa: BLE001 - the UI shows why, whatever went wrong
            return False, redact(f"{type(err).__name__}: {err}")
        more = "+" if meta.get("next_cursor") else ""
        return (
            True,
            f"Connected to {self.base_url}: {len(data)}{more} client integration(s) visible",
        )


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """Yield the body as sent (still compressed): BodyReader decodes with a bound, urllib3 not."""
    raw = response.raw
    if isinstance(raw, urllib3.HTTPResponse):
        return raw.stream(CHUNK_BYTES, decode_content=False)
    # A transport adapter that answers otherwise (from memory, a file): its bytes as given.
    return response.iter_content(CHUNK_BYTES)


def __getattr__(name: str) -> Any:
    # D6AsyncHook is importable from here too, loaded only when asked for: importing this module
    # (every worker and DAG file) must not import aiohttp.
    if name == "D6AsyncHook":
        from airflow_provider_d6.hooks.d6_async import D6AsyncHook

        return D6AsyncHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RESOURCE_FIELDS", "D6AsyncHook", "D6Hook", "RetryPolicy", "client_integration_record"]
