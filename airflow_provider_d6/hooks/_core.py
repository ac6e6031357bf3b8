"""The d6 transport's decisions, without I/O: one core for D6Hook (requests) and D6AsyncHook (aiohttp).

Everything that decides is here and imports no HTTP library: the request line and headers for a
path, the retry step (from an answer's status and headers, or a failure, to "wait this long and
send again" or "give up"), the cursor step (from a page's ``meta`` to the next page's query,
learning each endpoint's ``max_allowed_limit``), and the hooks' shared construction. A hook only
moves bytes and sleeps:

    exchange = core.exchange("GET", path, params=params)
    for step in exchange:  # a Request: send it; otherwise seconds to sleep
        if step.__class__ is Request:
            exchange.outcome = send(step)  # an Answer, or a Failure from FailureKinds.classify
        else:
            sleep(step)
    return exchange.result
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_d6.exceptions import D6ConnectionError
from airflow_provider_d6.hooks._config import USER_AGENT, aprepare_connection, prepare_connection
from airflow_provider_d6.hooks._endpoints import coerce_ids
from airflow_provider_d6.hooks._limits import ACCEPT_ENCODING, CursorGuard
from airflow_provider_d6.hooks._parse import envelope, parse_response
from airflow_provider_d6.hooks._retry import MAYBE_SENT, NOT_SENT, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_d6.hooks._config import D6Settings
    from airflow_provider_d6.hooks._endpoints import Endpoint

# Methods that a raw call (``run``) may re-send after an ambiguous failure. POST creates, PATCH
# may create (a promise without an id) and a re-sent DELETE answers 404 for a delete that worked,
# so those are sent again only when d6 certainly never saw them.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})

# Pagination progress is logged every this many pages (and once at the end), not per page.
LOG_EVERY_PAGES = 20

SCHOOL_HEADER = "HTTP-X-SCHOOLID"


@dataclass(frozen=True, slots=True)
class Request:
    """One request to send: method, absolute URL, query, JSON body and per-request headers."""

    method: str
    url: str
    params: Any = None
    json: Any = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What d6 (or a proxy in front of it) answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer: *kind* is ``NOT_SENT``, ``MAYBE_SENT`` or None (never retried)."""

    kind: str | None
    timed_out: bool
    error: BaseException


class FailureKinds:
    """Map one HTTP library's exceptions to a ``Failure``; each hook declares its classes once.

    :param certificate: certificate problems: never retried (retrying does not fix them)
    :param not_sent: failures before the request left (refused, connect timeout): always safe
        to retry; also matched against a wrapped ``reason`` (urllib3 wraps NewConnectionError)
    :param maybe_sent: failures after sending (reset, dropped, read timeout): d6 may have acted
    :param timeouts: of those, the ones that mean "sent, but no answer in time"
    """

    __slots__ = ("_certificate", "_maybe_sent", "_not_sent", "_timeouts", "catch")

    def __init__(
        self,
        *,
        certificate: tuple[type[BaseException], ...],
        not_sent: tuple[type[BaseException], ...],
        maybe_sent: tuple[type[BaseException], ...],
        timeouts: tuple[type[BaseException], ...],
    ) -> None:
        self._certificate = certificate
        self._not_sent = not_sent
        self._maybe_sent = maybe_sent
        self._timeouts = timeouts
        #: what the hook catches around a send: every class named above
        self.catch = certificate + not_sent + maybe_sent + timeouts

    def classify(self, exc: BaseException) -> Failure:
        """Return the ``Failure`` for *exc*, raised by the library while sending."""
        kind: str | None
        if isinstance(exc, self._certificate):
            kind = None
        elif isinstance(exc, self._not_sent) or isinstance(_reason(exc), self._not_sent):
            kind = NOT_SENT
        elif isinstance(exc, self._maybe_sent):
            kind = MAYBE_SENT
        else:
            kind = None
        timed_out = kind == MAYBE_SENT and isinstance(exc, self._timeouts)
        return Failure(kind, timed_out, exc)


def _reason(exc: BaseException) -> object:
    reason = exc.args[0] if exc.args else None
    return getattr(reason, "reason", reason)


class Exchange:
    """One d6 request and its retries, as steps: iterate it, and after each ``Request`` step set
    ``outcome``; ``result`` holds the parsed payload when the iteration ends. Gives up by raising
    the typed error (``D6ConnectionError``, or the ``D6Error`` that d6's last answer maps to).
    """

    __slots__ = ("_core", "allow_empty", "idempotent", "outcome", "request", "result")

    def __init__(self, core: Core, request: Request, *, idempotent: bool, allow_empty: bool):
        self._core = core
        self.request = request
        self.idempotent = idempotent
        self.allow_empty = allow_empty
        self.outcome: Answer | Failure | None = None
        self.result: Any = None

    def __iter__(self) -> Iterator[float | Request]:
        core, request = self._core, self.request
        policy, throttle = core.policy, core.throttle
        attempt = 0
        while True:
            attempt += 1
            wait = throttle.reserve()
            if wait:
                yield wait
            yield request
            outcome = self.outcome
            if isinstance(outcome, Answer):
                delay = self._after_answer(attempt, outcome)
                if delay is None:
                    self.result = parse_response(
                        outcome.status,
                        outcome.headers,
                        outcome.body,
                        method=request.method,
                        url=request.url,
                        allow_empty=self.allow_empty,
                    )
                    return
                what = f"HTTP {outcome.status}"
            elif isinstance(outcome, Failure):
                delay = self._after_failure(attempt, outcome)
                what = type(outcome.error).__name__
            else:
                raise RuntimeError("set Exchange.outcome after sending each Request step")
            core.log.warning(
                "d6 %s %s: %s on attempt %d of %d; retrying in %.2fs",
                request.method,
                request.url,
                what,
                attempt,
                policy.max_attempts,
                delay,
            )
            if delay > 0:
                yield delay

    def _after_answer(self, attempt: int, answer: Answer) -> float | None:
        """Return the delay before sending again, or None to take this answer as final."""
        status = answer.status
        if status != 429 and status < 500:
            return None
        core = self._core
        core.throttle.feedback(status == 429)
        if not core.policy.should_retry(attempt, status=status, idempotent=self.idempotent):
            return None
        return core.policy.wait(attempt, parse_retry_after(answer.headers.get("Retry-After")))

    def _after_failure(self, attempt: int, failure: Failure) -> float:
        """Return the delay before sending again, or raise ``D6ConnectionError`` to give up."""
        policy = self._core.policy
        kind = failure.kind
        if kind and policy.should_retry(attempt, failure=kind, idempotent=self.idempotent):
            return policy.wait(attempt)
        error = failure.error
        raise D6ConnectionError(
            f"no answer from d6 ({type(error).__name__}) after {attempt} attempt(s)",
            method=self.request.method,
            url=self.request.url,
            timed_out=failure.timed_out,
        ) from error


class Pages:
    """The cursor walk over one paginated collection: the next page's query, and the records.

    ``params`` is the query of the next page to fetch while ``more`` is true; ``take`` reads a
    page's payload, returns its records (ids coerced) and moves the cursor on. The limit d6
    reports as ``max_allowed_limit`` is remembered per endpoint in the core, so every later walk
    of that endpoint asks for that much at once.
    """

    __slots__ = (
        "_core",
        "_guard",
        "_limit",
        "endpoint",
        "more",
        "pages",
        "params",
        "records",
        "url",
    )

    def __init__(self, core: Core, endpoint: Endpoint, params: dict[str, Any]) -> None:
        self._core = core
        self.endpoint = endpoint
        self.url = core.base_url + endpoint.path
        # A cursor seen before (the same one, or a cycle) or a long run of empty pages ends the
        # walk with D6ResponseError: otherwise a broken d6 loops forever and an export's file
        # grows without end.
        self._guard = CursorGuard(endpoint.name, self.url)
        self._limit = core.limits.get(endpoint.name)
        if self._limit:
            params["limit"] = self._limit
        self.params = params
        self.more = True
        self.pages = self.records = 0

    def take(self, payload: Any) -> list[dict[str, Any]]:
        """Return the records of one page's *payload* and prepare the next page's query."""
        data, meta = envelope(payload, method="GET", url=self.url)
        endpoint, core = self.endpoint, self._core
        for record in data:
            coerce_ids(record, endpoint)
        self.pages += 1
        self.records += len(data)
        max_limit = meta.get("max_allowed_limit")
        if isinstance(max_limit, int) and max_limit > 0 and max_limit != self._limit:
            # Never send more than d6 said it allows; learned once per endpoint per hook.
            self._limit = core.limits[endpoint.name] = max_limit
        cursor = self._guard.next_cursor(meta.get("next_cursor"), len(data))
        if cursor is None:
            self.more = False
            if self.pages > 1:  # single-page lookups (one pair, one school) would only add noise
                core.log.info(
                    "d6 %s: %d records in %d pages", endpoint.name, self.records, self.pages
                )
            return data
        if self.pages % LOG_EVERY_PAGES == 0:
            core.log.info(
                "d6 %s: %d records in %d pages so far", endpoint.name, self.records, self.pages
            )
        self.params["cursor"] = cursor
        if self._limit:
            self.params["limit"] = self._limit
        return data


class Core:
    """One hook's transport state (settings, retry policy, throttle, learned page limits) and the
    decisions made with it. Built once per hook, from its connection.

    :param settings: the resolved connection settings
    :param policy: the retry policy
    :param throttle: the client-side throttle (``reserve``/``feedback``)
    :param log: the hook's logger
    """

    __slots__ = ("base_url", "limits", "log", "policy", "settings", "throttle")

    def __init__(self, settings: D6Settings, policy: RetryPolicy, throttle: Any, log: Logger):
        self.settings = settings
        self.base_url = settings.base_url
        self.policy = policy
        self.throttle = throttle
        self.log = log
        self.limits: dict[str, int] = {}

    def session_headers(self) -> dict[str, str]:
        """Return the headers every request carries: client, content type and credentials."""
        return {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            # Only what BodyReader decodes with a bound (the libraries would add br or zstd).
            "Accept-Encoding": ACCEPT_ENCODING,
            **self.settings.auth_headers(),
        }

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        school_id: int | str | None = None,
    ) -> Request:
        """Return the request line and per-request headers for *path* below the base URL."""
        headers = {SCHOOL_HEADER: str(school_id)} if school_id is not None else None
        return Request(method, self.base_url + path, params, json, headers)

    def exchange(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        allow_empty: bool = False,
        **fields: Any,
    ) -> Exchange:
        """Return the steps of one request to *path* (see ``Exchange``).

        :param method: the HTTP method
        :param path: the path below the base URL
        :param idempotent: whether an ambiguous failure may be re-sent
        :param allow_empty: accept an empty 2xx body (returned as None)
        :param fields: ``params``, ``json`` and ``school_id``, as ``request`` takes them
        """
        request = self.request(method, path, **fields)
        return Exchange(self, request, idempotent=idempotent, allow_empty=allow_empty)

    def pages(self, endpoint: Endpoint, params: dict[str, Any]) -> Pages:
        """Return the cursor walk over *endpoint* with already-checked *params*."""
        return Pages(self, endpoint, params)


class D6HookBase:
    """What D6Hook and D6AsyncHook share: options, ``repr`` and building the core.

    :param d6_conn_id: the Airflow connection of type ``d6``
    :param timeout: seconds to wait for each answer (default 30)
    :param max_attempts: attempts in total per request, the first included, for transient
        failures (default 5; 1 means never retry)
    :param max_retries: the old name of ``max_attempts`` (same meaning; 0 also means one attempt)
    :param requests_per_second: client-side throttle; None means adaptive
    :param activation_route: ``auto`` (v2 then v1 on route_not_found), ``v2`` or ``v1``; used by
        state changes, which only the sync hook makes
    :param verify: TLS verification: True, False or the path of a CA bundle
    :param max_response_bytes: the most one answer may hold once decoded (default 32 MiB)
    :param retry_policy: attempts and backoff; a ``max_attempts`` kwarg overrides its attempts
    """

    conn_name_attr = "d6_conn_id"
    default_conn_name = "d6_default"
    conn_type = "d6"

    def __init__(
        self,
        d6_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        max_retries: int | None = None,
        requests_per_second: float | None = None,
        activation_route: str | None = None,
        verify: bool | str | None = None,
        max_response_bytes: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(**self._base_hook_args(d6_conn_id))
        self.d6_conn_id = d6_conn_id
        self._overrides = {
            "timeout": timeout,
            "max_attempts": max_attempts,
            "max_retries": max_retries,
            "requests_per_second": requests_per_second,
            "activation_route": activation_route,
            "verify": verify,
            "max_response_bytes": max_response_bytes,
        }
        self._retry_policy = retry_policy
        self._core: Core | None = None
        self._init_io()

    def _init_io(self) -> None:
        """Set up the hook's I/O state (its session, locks), before any connection is read."""

    def _base_hook_args(self, d6_conn_id: str) -> dict[str, Any]:
        """Return the keyword arguments for the Airflow hook class this one extends."""
        return {}

    def __repr__(self) -> str:
        base_url = self._core.base_url if self._core else None
        return f"{type(self).__name__}(d6_conn_id={self.d6_conn_id!r}, base_url={base_url!r})"

    def _build_core(self, conn: Any, log: Logger) -> Core:
        """Turn the connection into the core (settings, policy, throttle); masks the password."""
        settings, policy, throttle = prepare_connection(conn, self._overrides, self._retry_policy)
        return Core(settings, policy, throttle, log)

    async def _abuild_core(self, conn: Any, log: Logger) -> Core:
        """``_build_core`` for an event loop: masks the password without blocking it."""
        settings, policy, throttle = await aprepare_connection(
            conn, self._overrides, self._retry_policy
        )
        return Core(settings, policy, throttle, log)
