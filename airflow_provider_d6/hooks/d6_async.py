"""D6AsyncHook: the aiohttp twin of D6Hook for triggers; never blocks the event loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any, Self

import aiohttp
from airflow.exceptions import AirflowNotFoundException
from airflow.sdk import BaseHook

from airflow_provider_d6.exceptions import D6ConnectionError
from airflow_provider_d6.hooks._config import (
    USER_AGENT,
    D6Settings,
    default_verify,
    missing_connection,
    prepare_connection,
)
from airflow_provider_d6.hooks._endpoints import ENDPOINTS, coerce_ids
from airflow_provider_d6.hooks._parse import envelope, parse_response
from airflow_provider_d6.hooks._retry import MAYBE_SENT, NOT_SENT, RetryPolicy, parse_retry_after
from airflow_provider_d6.hooks._validate import check_filters, check_id

CLIENT_INTEGRATIONS = ENDPOINTS["client_integrations"]


def _failure_kind(exc: BaseException) -> str | None:
    if isinstance(exc, aiohttp.ClientSSLError):
        return None  # a certificate problem does not go away by retrying
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NOT_SENT
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)):
        return MAYBE_SENT
    return None


class D6AsyncHook(BaseHook):
    """Call the d6+ Integrate API from async code (triggers) with one ``aiohttp`` session.

    Same connection, options, retry policy and error mapping as ``D6Hook``.

    :param d6_conn_id: the Airflow connection of type ``d6``
    :param timeout: seconds to wait for each answer (default 30)
    :param max_retries: attempts per request for transient failures (default 5)
    :param requests_per_second: client-side throttle; None means adaptive
    :param verify: TLS verification: True, False or the path of a CA bundle
    :param retry_policy: attempts and backoff; a ``max_retries`` kwarg overrides its attempts
    """

    conn_name_attr = "d6_conn_id"
    default_conn_name = "d6_default"
    conn_type = "d6"
    hook_name = "d6+ Integrate (async)"

    def __init__(
        self,
        d6_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        requests_per_second: float | None = None,
        verify: bool | str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.d6_conn_id = d6_conn_id
        self._overrides = {
            "timeout": timeout,
            "max_retries": max_retries,
            "requests_per_second": requests_per_second,
            "verify": verify,
        }
        self._retry_policy = retry_policy
        self._settings: D6Settings | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loading: asyncio.Lock | None = None
        self._max_limit: int | None = None

    def __repr__(self) -> str:
        base_url = self._settings.base_url if self._settings else None
        return f"{type(self).__name__}(d6_conn_id={self.d6_conn_id!r}, base_url={base_url!r})"

    async def _ensure(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._session is None:
                try:
                    conn = await self.aget_connection(self.d6_conn_id)
                except AirflowNotFoundException:
                    raise missing_connection(self.d6_conn_id) from None
                settings, self._policy, self._throttle = prepare_connection(
                    conn, self._overrides, self._retry_policy
                )
                headers = {
                    "User-Agent": USER_AGENT,
                    "Accept": "application/json",
                    **settings.auth_headers(),
                }
                self._session = aiohttp.ClientSession(
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=settings.timeout),
                    trust_env=True,  # honour HTTPS_PROXY / NO_PROXY like the sync hook
                    connector=aiohttp.TCPConnector(
                        ssl=await asyncio.to_thread(_ssl_context, settings.verify)
                    ),
                )
                self._settings = settings
        return self._session

    async def close(self) -> None:
        """Close the aiohttp session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(
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
        session = await self._ensure()
        url = self._settings.base_url + path  # type: ignore[union-attr]
        headers = {"HTTP-X-SCHOOLID": str(school_id)} if school_id is not None else None
        attempt = 0
        while True:
            attempt += 1
            wait = self._throttle.reserve()
            if wait:
                await asyncio.sleep(wait)
            try:
                async with session.request(
                    method, url, params=params, json=json, headers=headers, allow_redirects=False
                ) as response:
                    status, body = response.status, await response.read()
                    response_headers = response.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                kind = _failure_kind(exc)
                if kind and self._policy.should_retry(attempt, failure=kind, idempotent=idempotent):
                    await self._pause(
                        method, url, attempt, type(exc).__name__, self._policy.wait(attempt)
                    )
                    continue
                raise D6ConnectionError(
                    f"no answer from d6 ({type(exc).__name__}) after {attempt} attempt(s)",
                    method=method,
                    url=url,
                    # The same meaning as in the sync hook: sent, but no answer in time.
                    timed_out=isinstance(exc, asyncio.TimeoutError)
                    and not isinstance(exc, aiohttp.ConnectionTimeoutError),
                ) from exc
            if status == 429 or status >= 500:
                self._throttle.feedback(status == 429)
                if self._policy.should_retry(attempt, status=status, idempotent=idempotent):
                    delay = self._policy.wait(
                        attempt, parse_retry_after(response_headers.get("Retry-After"))
                    )
                    await self._pause(method, url, attempt, f"HTTP {status}", delay)
                    continue
            return parse_response(
                status, response_headers, body, method=method, url=url, allow_empty=allow_empty
            )

    async def _pause(self, method: str, url: str, attempt: int, what: str, delay: float) -> None:
        self.log.warning(
            "d6 %s %s: %s on attempt %d of %d; retrying in %.2fs",
            method,
            url,
            what,
            attempt,
            self._policy.max_attempts,
            delay,
        )
        await asyncio.sleep(delay)

    async def iter_client_integrations(
        self, school_id: int | None = None, api_type_id: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the client integrations page by page (async generator).

        :param school_id: only this school
        :param api_type_id: only this API type
        """
        params = check_filters(
            CLIENT_INTEGRATIONS, {"school_id": school_id, "api_type_id": api_type_id}
        )
        if self._max_limit:
            params["limit"] = self._max_limit
        path = CLIENT_INTEGRATIONS.path
        while True:
            payload = await self._send("GET", path, params=params)
            url = self._settings.base_url + path  # type: ignore[union-attr]
            data, meta = envelope(payload, method="GET", url=url)
            for record in data:
                yield coerce_ids(record, CLIENT_INTEGRATIONS)
            max_limit = meta.get("max_allowed_limit")
            if isinstance(max_limit, int) and max_limit > 0:
                self._max_limit = max_limit
            cursor = meta.get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor
            if self._max_limit:
                params["limit"] = self._max_limit

    async def get_client_integration(
        self, school_id: int, api_type_id: int
    ) -> dict[str, Any] | None:
        """Return the client integration of one school and API type, or None if not listed."""
        school_id, api_type_id = (
            check_id(school_id, "school_id"),
            check_id(api_type_id, "api_type_id"),
        )
        async for record in self.iter_client_integrations(
            school_id=school_id, api_type_id=api_type_id
        ):
            if record.get("school_id") == school_id and record.get("api_type_id") == api_type_id:
                return record
        return None


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """Return the aiohttp ``ssl`` argument for *verify* (loading a CA file reads the disk)."""
    verify = default_verify(verify)
    if verify is False:
        return False
    if verify is True:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=verify)
