"""D6AsyncHook: the aiohttp twin of D6Hook for triggers; never blocks the event loop.

The decisions (request line, retries, pagination, errors) are ``_core``'s, shared with D6Hook;
this module only sends with ``aiohttp`` and sleeps with ``asyncio``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any, Self

import aiohttp

from airflow_provider_d6._compat import AirflowNotFoundException, BaseHook, get_async_connection
from airflow_provider_d6.hooks._config import default_verify, missing_connection, never_proxied
from airflow_provider_d6.hooks._core import Answer, Core, D6HookBase, Failure, FailureKinds, Request
from airflow_provider_d6.hooks._endpoints import Endpoint
from airflow_provider_d6.hooks._limits import CHUNK_BYTES, BodyReader
from airflow_provider_d6.hooks.client_integration_state import (
    CLIENT_INTEGRATIONS,
    is_pair,
    list_params,
    pair,
)

FAILURES = FailureKinds(
    certificate=(aiohttp.ClientSSLError,),
    # A connect timeout means the request never left, as in the sync hook.
    not_sent=(aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError),
    maybe_sent=(aiohttp.ClientError, asyncio.TimeoutError),
    timeouts=(asyncio.TimeoutError,),
)
_CATCH = (aiohttp.ClientError, asyncio.TimeoutError)


class D6AsyncHook(D6HookBase, BaseHook):
    """Call the d6+ Integrate API from async code (triggers) with one ``aiohttp`` session.

    Same connection, options, retry policy, pagination and error mapping as ``D6Hook``.

    :param d6_conn_id: the Airflow connection of type ``d6``
    :param timeout: seconds to wait for each answer (default 30)
    :param max_attempts: attempts in total per request, the first included, for transient
        failures (default 5; 1 means never retry)
    :param max_retries: the old name of ``max_attempts`` (same meaning; 0 also means one attempt)
    :param requests_per_second: client-side throttle; None means adaptive
    :param activation_route: accepted for symmetry with ``D6Hook`` (this hook changes no state)
    :param verify: TLS verification: True, False or the path of a CA bundle
    :param max_response_bytes: the most one answer may hold once decoded (default 32 MiB)
    :param retry_policy: attempts and backoff; a ``max_attempts`` kwarg overrides its attempts
    """

    hook_name = "d6+ Integrate (async)"

    def _init_io(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loading: asyncio.Lock | None = None

    async def _ensure(self) -> Core:
        """Return the core, reading the connection once and (re)opening the session if closed."""
        if self._session is None:
            if self._loading is None:
                self._loading = asyncio.Lock()
            async with self._loading:
                if self._session is None:
                    await self._open()
        assert self._core is not None  # set by _open, with the session
        return self._core

    async def _open(self) -> None:
        core = self._core
        if core is None:
            try:
                # Not self.aget_connection: before Airflow 3.3.2 it can deadlock a triggerer.
                conn = await get_async_connection(self.d6_conn_id, self)
            except AirflowNotFoundException:
                raise missing_connection(self.d6_conn_id) from None
            # Not _build_core: its extra_dejson and mask_secret call the supervisor synchronously.
            core = await self._abuild_core(conn, self.log)
        self._session = aiohttp.ClientSession(
            headers=core.session_headers(),
            timeout=aiohttp.ClientTimeout(total=core.settings.timeout),
            # Honour HTTPS_PROXY / NO_PROXY like the sync hook, except for loopback (plain http
            # to the sandbox), which is never proxied: the proxy would see the credentials.
            trust_env=not never_proxied(core.base_url),
            connector=aiohttp.TCPConnector(
                ssl=await asyncio.to_thread(_ssl_context, core.settings.verify)
            ),
        )
        self._core = core

    async def close(self) -> None:
        """Close the aiohttp session (the next call opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, method: str, path: str, **options: Any) -> Any:
        """Send one request; *options* as ``Core.exchange`` takes them (see ``D6Transport``)."""
        exchange = (await self._ensure()).exchange(method, path, **options)
        for step in exchange:
            if isinstance(step, Request):
                exchange.outcome = await self._attempt(step)
            else:
                await asyncio.sleep(step)
        return exchange.result

    async def _attempt(self, request: Request) -> Answer | Failure:
        """Send *request* once: d6's answer, or the failure that stopped it."""
        assert self._session is not None  # set by _ensure, which every _send awaits first
        settings = self._core.settings  # type: ignore[union-attr]  # set with the session
        try:
            async with self._session.request(
                request.method,
                request.url,
                params=request.params,
                json=request.json,
                headers=request.headers,
                allow_redirects=False,
                # The whole answer, headers and body, within the connection's timeout.
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
                # Raw bytes: BodyReader decodes gzip with a bound on its output.
                auto_decompress=False,
            ) as response:
                reader = BodyReader(
                    response.headers,
                    settings.max_response_bytes,
                    method=request.method,
                    url=request.url,
                )
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    reader.feed(chunk)
                return Answer(response.status, response.headers, reader.finish())
        except _CATCH as exc:
            return FAILURES.classify(exc)

    async def _iter_endpoint(
        self, endpoint: Endpoint, school_id: int | None, params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield a paginated collection's records, as D6Hook does, awaiting each page."""
        pages = (await self._ensure()).pages(endpoint, params)
        while pages.more:
            page = pages.take(
                await self._send("GET", endpoint.path, params=pages.params, school_id=school_id)
            )
            for record in page:
                yield record

    def iter_client_integrations(
        self, school_id: int | None = None, api_type_id: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the client integrations page by page (async generator).

        :param school_id: only this school
        :param api_type_id: only this API type
        """
        return self._iter_endpoint(CLIENT_INTEGRATIONS, None, list_params(school_id, api_type_id))

    async def get_client_integration(
        self, school_id: int, api_type_id: int
    ) -> dict[str, Any] | None:
        """Return the client integration of one school and API type, or None if not listed."""
        wanted = pair(school_id, api_type_id)
        async for record in self.iter_client_integrations(**wanted):
            if is_pair(record, wanted):
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
