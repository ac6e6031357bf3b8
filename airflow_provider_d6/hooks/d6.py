"""D6Hook: the one transport to the d6+ Integrate API, plus its async twin for triggers.

Absorbs d6's quirks so that nobody above it sees them: per-endpoint API versions, the two
credential headers, the school header, cursor pagination, v1 and v2 error bodies, ids sent as
strings, the contradictory Change Client Integration State route, and rate limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from airflow.exceptions import AirflowNotFoundException
from airflow.providers.http.hooks.http import HttpHook
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.exceptions import NewConnectionError

from airflow_provider_d6.exceptions import (
    D6ConnectionError,
    D6Error,
    D6InputError,
)
from airflow_provider_d6.hooks._client_integrations import (
    CLIENT_INTEGRATIONS,
    ClientIntegrationMethods,
    client_integration_record,
)
from airflow_provider_d6.hooks._config import (
    USER_AGENT,
    D6Settings,
    default_verify,
    missing_connection,
    prepare_connection,
)
from airflow_provider_d6.hooks._debt_management import DebtManagementMethods
from airflow_provider_d6.hooks._endpoints import (
    ENDPOINTS,
    RESOURCE_FIELDS,
    Endpoint,
    coerce_ids,
)
from airflow_provider_d6.hooks._parse import envelope, parse_response, single
from airflow_provider_d6.hooks._retry import MAYBE_SENT, NOT_SENT, RetryPolicy, parse_retry_after
from airflow_provider_d6.hooks._validate import check_filters, check_id
from airflow_provider_d6.hooks.d6_async import D6AsyncHook  # re-exported: one import for both hooks

# Pagination progress is logged every this many pages (and once at the end), not per page.
_LOG_EVERY_PAGES = 20
# Operators apply changes from a thread pool of up to 32 workers sharing one hook.
_POOL_SIZE = 32


def failure_kind(exc: requests.RequestException) -> str | None:
    """Classify a requests exception: ``NOT_SENT``, ``MAYBE_SENT``, or None (never retry)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return None  # a certificate problem does not go away by retrying
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return NOT_SENT
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(getattr(reason, "reason", reason), NewConnectionError):
            return NOT_SENT
        return MAYBE_SENT
    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)):
        return MAYBE_SENT
    return None


class D6Hook(ClientIntegrationMethods, DebtManagementMethods, HttpHook):
    """Call the d6+ Integrate API through one reusable, thread-safe session.

    The connection is read once, on first use. Options resolve as hook kwargs > connection extras
    > defaults.

    :param d6_conn_id: the Airflow connection of type ``d6``
    :param timeout: seconds to wait for each answer (default 30)
    :param max_retries: attempts per request for transient failures (default 5)
    :param requests_per_second: client-side throttle; None means adaptive
    :param activation_route: ``auto`` (v2 then v1 on route_not_found), ``v2`` or ``v1``
    :param verify: TLS verification: True, False or the path of a CA bundle
    :param retry_policy: attempts and backoff; a ``max_retries`` kwarg overrides its attempts
    """

    conn_name_attr = "d6_conn_id"
    default_conn_name = "d6_default"
    conn_type = "d6"
    hook_name = "d6+ Integrate"
    RESOURCE_FIELDS = RESOURCE_FIELDS

    def __init__(
        self,
        d6_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        requests_per_second: float | None = None,
        activation_route: str | None = None,
        verify: bool | str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        # No keep-alive adapter from HttpHook: ours is mounted once with a 32-connection pool.
        super().__init__(method="GET", http_conn_id=d6_conn_id, tcp_keep_alive=False)
        self.d6_conn_id = d6_conn_id
        self._overrides = {
            "timeout": timeout,
            "max_retries": max_retries,
            "requests_per_second": requests_per_second,
            "activation_route": activation_route,
            "verify": verify,
        }
        self._retry_policy = retry_policy
        self._lock = threading.Lock()
        self._settings: D6Settings | None = None
        self._session: requests.Session | None = None
        self._max_limits: dict[str, int] = {}

    def __repr__(self) -> str:
        base_url = self._settings.base_url if self._settings else None
        return f"{type(self).__name__}(d6_conn_id={self.d6_conn_id!r}, base_url={base_url!r})"

    # -- connection and session -------------------------------------------------------------

    @property
    def settings(self) -> D6Settings:
        """Return the connection's settings, reading the connection on first use only."""
        if self._settings is None:
            self._load()
        return self._settings  # type: ignore[return-value]

    @property
    def base_url(self) -> str:
        """Return the d6 base URL (``.../api``) from the connection."""
        return self.settings.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        """Ignore assignments: HttpHook's constructor sets "", the connection decides."""

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy in effect (attempts from kwargs, the connection or defaults)."""
        if self._session is None:
            self._load()
        return self._policy

    @property
    def session(self) -> requests.Session:
        """Return the hook's one ``requests.Session`` (created on first use, then reused)."""
        if self._session is None:
            self._load()
        return self._session  # type: ignore[return-value]

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                conn = self.get_connection(self.d6_conn_id)
            except AirflowNotFoundException:
                raise missing_connection(self.d6_conn_id) from None
            settings, self._policy, self._throttle = prepare_connection(
                conn, self._overrides, self._retry_policy
            )
            self._timeout = settings.timeout
            # Plain http (loopback only) has no certificate to check; a CA-bundle path there would
            # only make requests stat the file on every call.
            https = settings.base_url.startswith("https://")
            self._verify = default_verify(settings.verify) if https else True
            self._base_url = settings.base_url
            session = requests.Session()
            # The environment is read here once, not on every request (trust_env would redo the
            # proxy and CA lookups per call); an explicit verify then wins over REQUESTS_CA_BUNDLE.
            session.trust_env = False
            session.proxies = get_environ_proxies(settings.base_url)
            session.verify = self._verify
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json"
            session.headers.update(settings.auth_headers())
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=_POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._settings = settings
            self._session = session

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

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        school_id: int | None = None,
        idempotent: bool = True,
        allow_empty: bool = False,
    ) -> Any:
        session = self._session or self.session
        url = self._base_url + path
        headers = {"HTTP-X-SCHOOLID": str(school_id)} if school_id is not None else None
        policy, throttle = self._policy, self._throttle
        attempt = 0
        while True:
            attempt += 1
            wait = throttle.reserve()
            if wait:
                time.sleep(wait)
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=self._timeout,
                    verify=self._verify,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                kind = failure_kind(exc)
                if kind and policy.should_retry(attempt, failure=kind, idempotent=idempotent):
                    self._pause(method, url, attempt, type(exc).__name__, policy.wait(attempt))
                    continue
                raise D6ConnectionError(
                    f"no answer from d6 ({type(exc).__name__}) after {attempt} attempt(s)",
                    method=method,
                    url=url,
                    timed_out=isinstance(exc, requests.exceptions.ReadTimeout),
                ) from exc
            status = response.status_code
            if status == 429 or status >= 500:
                throttle.feedback(status == 429)
                if policy.should_retry(attempt, status=status, idempotent=idempotent):
                    delay = policy.wait(
                        attempt, parse_retry_after(response.headers.get("Retry-After"))
                    )
                    self._pause(method, url, attempt, f"HTTP {status}", delay)
                    continue
            return parse_response(
                status,
                response.headers,
                response.content,
                method=method,
                url=url,
                allow_empty=allow_empty,
            )

    def _pause(self, method: str, url: str, attempt: int, what: str, delay: float) -> None:
        self.log.warning(
            "d6 %s %s: %s on attempt %d of %d; retrying in %.2fs",
            method,
            url,
            what,
            attempt,
            self._policy.max_attempts,
            delay,
        )
        if delay > 0:
            time.sleep(delay)

    def _iter_endpoint(
        self, endpoint: Endpoint, school_id: int | None, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paginated collection, one page in memory at a time."""
        limit = self._max_limits.get(endpoint.name)
        if limit:
            params["limit"] = limit
        url = self.base_url + endpoint.path
        pages = records = 0
        while True:
            payload = self._send("GET", endpoint.path, params=params, school_id=school_id)
            data, meta = envelope(payload, method="GET", url=url)
            del payload
            pages += 1
            records += len(data)
            for record in data:
                yield coerce_ids(record, endpoint)
            cursor = meta.get("next_cursor")
            max_limit = meta.get("max_allowed_limit")
            if isinstance(max_limit, int) and max_limit > 0 and max_limit != limit:
                # Never send more than d6 said it allows; learned once per endpoint per hook.
                limit = self._max_limits[endpoint.name] = max_limit
            if not cursor:
                break
            if pages % _LOG_EVERY_PAGES == 0:
                self.log.info("d6 %s: %d records in %d pages so far", endpoint.name, records, pages)
            params["cursor"] = cursor
            if limit:
                params["limit"] = limit
        if pages > 1:  # single-page lookups (one pair, one school) would only add noise
            self.log.info("d6 %s: %d records in %d pages", endpoint.name, records, pages)

    def _list(self, endpoint: Endpoint, school_id: int | None) -> list[dict[str, Any]]:
        url = self.base_url + endpoint.path
        payload = self._send("GET", endpoint.path, school_id=school_id)
        data, _ = envelope(payload, method="GET", url=url)
        return [coerce_ids(record, endpoint) for record in data]

    def _get_one(self, endpoint: Endpoint, school_id: int | None, record_id: Any) -> dict[str, Any]:
        record_id = check_id(record_id, endpoint.id_param or "id")
        path = f"{endpoint.path}/{record_id}"
        payload = self._send("GET", path, school_id=school_id)
        return coerce_ids(single(payload, method="GET", url=self.base_url + path), endpoint)

    def iter_resource(
        self, resource: str, school_id: int | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield the records of *resource* by name (``schools``, ``learners``, ``notes``, ...).

        :param resource: a key of ``RESOURCE_FIELDS``
        :param school_id: the school (required for school-scoped resources; a filter for
            ``client_integrations``; one school for ``schools``)
        :param filters: the resource's documented filters
        """
        endpoint = ENDPOINTS.get(resource)
        if endpoint is None:
            raise D6InputError(
                f"unknown resource {resource!r}",
                field="resource",
                allowed=", ".join(sorted(ENDPOINTS)),
            )
        if endpoint.name == "client_integrations":
            return self.iter_client_integrations(school_id=school_id, **filters)
        if endpoint.name == "schools" and school_id is not None:
            check_filters(endpoint, filters)
            return iter([self.get_school(school_id)])
        return self._iter_resource(endpoint, school_id, filters)

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

    # -- Airflow ------------------------------------------------------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> Any:
        """Call a raw d6 path (HttpHook API) through the shared session; return the parsed JSON.

        :param endpoint: path below the base URL, e.g. ``v2/settings/clientintegrations``
        :param data: query parameters for GET, the JSON body otherwise
        :param headers: only ``HTTP-X-SCHOOLID`` is honoured
        """
        path = "/" + (endpoint or "").lstrip("/")
        school_id = (headers or {}).get("HTTP-X-SCHOOLID")
        if self.method == "GET":
            return self._send("GET", path, params=data, school_id=school_id)
        return self._send(
            self.method,
            path,
            json=data,
            school_id=school_id,
            idempotent=self.method != "POST",
            allow_empty=True,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call and say what the credentials can see."""
        try:
            self._load()
            limit = self._max_limits.get(CLIENT_INTEGRATIONS.name)
            payload = self._send(
                "GET", CLIENT_INTEGRATIONS.path, params={"limit": limit} if limit else None
            )
            data, meta = envelope(
                payload, method="GET", url=self.base_url + CLIENT_INTEGRATIONS.path
            )
        except D6Error as err:
            return False, str(err)
        except Exception as err:  # noqa: BLE001 - the UI shows why, whatever went wrong
            return False, f"{type(err).__name__}: {err}"
        more = "+" if meta.get("next_cursor") else ""
        return (
            True,
            f"Connected to {self.base_url}: {len(data)}{more} client integration(s) visible",
        )


__all__ = ["RESOURCE_FIELDS", "D6AsyncHook", "D6Hook", "RetryPolicy", "client_integration_record"]
