"""One poll of d6's client integrations per interval for every trigger waiting on a connection.

Hundreds of ``ClientIntegrationTrigger``s often wait at once in one triggerer (one per school
being onboarded), all on the same d6 credential. Each used to open its own ``aiohttp`` session
and ask d6 about its own pair every interval: 500 waiting schools cost 500 sessions and 500
requests per interval, and the triggerer's CPU. Here the triggers of one connection in one event
loop share a ``ClientIntegrationPoller``: one ``D6AsyncHook`` (one session, one connection
lookup), and one view of d6's client integrations per interval that answers every waiting trigger.

The poller is reference-counted: ``poller_for`` joins (creating it on the first trigger) and
``ClientIntegrationPoller.leave`` releases; when the last trigger leaves (condition met, timeout,
error or cancellation) the poller stops, closes its session and is forgotten.

How a view is taken: while few pairs are awaited it looks each one up with d6's filters (one
request per pair, exactly what a lone trigger always did); once walking the whole listing is
cheaper than that (it costs one request per page, learned on each walk), it walks the listing
once and answers everyone from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_d6.hooks.client_integration_state import CLIENT_INTEGRATIONS

if TYPE_CHECKING:
    from airflow_provider_d6.hooks.d6_async import D6AsyncHook

Pair = tuple[int, int]

# d6's default page size in its documentation's example [gap: not stated as a rule].
DEFAULT_PAGE = 10

# Pollers by event loop, then connection id. A loop that is dropped takes its pollers with it;
# normally they are gone long before, when their last trigger leaves.
_POLLERS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, ClientIntegrationPoller]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class View:
    """What d6 listed in one poll: the records of the pairs it covers (absent: not listed).

    :param records: the client-integration records found, by ``(school_id, api_type_id)``
    :param covered: the pairs this view answers for; None means every pair (a full walk)
    """

    records: dict[Pair, dict[str, Any]]
    covered: frozenset[Pair] | None

    def covers(self, pair: Pair) -> bool:
        """Return whether this view says anything about *pair*."""
        return self.covered is None or pair in self.covered

    def record(self, pair: Pair) -> dict[str, Any] | None:
        """Return a copy of *pair*'s record, or None when d6 does not list it."""
        record = self.records.get(pair)
        return dict(record) if record is not None else None


@dataclass(eq=False, slots=True)
class Waiter:
    """One trigger's share of a poller: the pair it awaits and how often it wants to know."""

    pair: Pair
    poke_interval: float


class ClientIntegrationPoller:
    """Take one view of d6's client integrations per interval for the triggers of one connection.

    Not built directly: ``poller_for`` returns the running one for a connection and event loop.

    :param d6_conn_id: the d6 connection every waiting trigger uses
    :param hook: the one async hook (and session) the polls go through
    """

    def __init__(self, d6_conn_id: str, hook: D6AsyncHook) -> None:
        self.d6_conn_id = d6_conn_id
        self._hook = hook
        self._waiters: set[Waiter] = set()
        self._next: asyncio.Future[View] = _new_future()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Pages of the whole listing on the last walk; None until the listing was walked once.
        self._listing_pages: int | None = None
        #: polls taken so far (each one view, whatever it cost in requests)
        self.polls = 0

    @property
    def waiting(self) -> int:
        """Return how many triggers share this poller now."""
        return len(self._waiters)

    def join(self, pair: Pair, poke_interval: float) -> Waiter:
        """Register one trigger awaiting *pair* and start polling if this is the first one."""
        waiter = Waiter(pair, poke_interval)
        self._waiters.add(waiter)
        self._changed.set()  # a shorter interval or a new pair may move the next poll
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"d6 client integrations poller ({self.d6_conn_id})"
            )
        return waiter

    async def leave(self, waiter: Waiter) -> None:
        """Release *waiter*'s share; the last one to leave stops the poller and closes its session."""
        self._waiters.discard(waiter)
        self._changed.set()
        if self._waiters:
            return
        pollers = _POLLERS.get(asyncio.get_running_loop(), {})
        if pollers.get(self.d6_conn_id) is self:
            del pollers[self.d6_conn_id]
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._hook.close()

    async def next_view(self, waiter: Waiter, timeout: float | None = None) -> View | None:
        """Return the next view that covers *waiter*'s pair, or None if *timeout* passes first.

        Raises what stopped that poll (a ``D6Error`` for d6's or the connection's failures).
        """
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + max(timeout, 0.0)
        while True:
            remaining = None if until is None else until - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                # Shielded: one waiter giving up must not cancel the view the others await.
                view = await asyncio.wait_for(asyncio.shield(self._next), remaining)
            except TimeoutError:
                return None
            if view.covers(waiter.pair):
                return view

    def _interval(self) -> float:
        return min(waiter.poke_interval for waiter in self._waiters)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiters:
            started = loop.time()
            pairs = frozenset(waiter.pair for waiter in self._waiters)
            future, self._next = self._next, _new_future()
            try:
                view = await self._take(pairs)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as err:  # noqa: BLE001 - every waiter gets what stopped the poll
                future.set_exception(err)
                # The next poll reads the connection again with a new session: a rotated
                # password or a fixed connection is picked up without restarting the triggerer.
                await self._hook.close()
                self._hook = _new_hook(self.d6_conn_id)
            else:
                future.set_result(view)
            self.polls += 1
            # Sleep until one interval after this poll started; a trigger joining with a shorter
            # interval, or the last one leaving, wakes the sleep to re-plan.
            while self._waiters:
                delay = started + self._interval() - loop.time()
                if delay <= 0:
                    break
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)

    async def _take(self, pairs: frozenset[Pair]) -> View:
        """Poll d6 once for *pairs*: each pair with filters, or the whole listing if cheaper."""
        hook = self._hook
        if len(pairs) <= (self._listing_pages or 1):
            records: dict[Pair, dict[str, Any]] = {}
            for school_id, api_type_id in sorted(pairs):
                record = await hook.get_client_integration(school_id, api_type_id)
                if record is not None:
                    records[(school_id, api_type_id)] = record
            return View(records, pairs)
        records = {}
        listed = 0
        async for record in hook.iter_client_integrations():
            listed += 1
            listed_school, listed_api = record.get("school_id"), record.get("api_type_id")
            if isinstance(listed_school, int) and isinstance(listed_api, int):
                records[(listed_school, listed_api)] = record
        self._listing_pages = _pages(hook, listed)
        return View(records, None)


def _pages(hook: D6AsyncHook, listed: int) -> int:
    """Return how many pages a walk of *listed* client integrations costs with *hook*."""
    # The hook remembers the largest page d6 allows per endpoint (meta.max_allowed_limit) once a
    # walk has seen it; before that d6's default page applies, documented only by example (10).
    core = hook._core
    page = core.limits.get(CLIENT_INTEGRATIONS.name) if core is not None else None
    return max(1, math.ceil(listed / (page or DEFAULT_PAGE)))


def _new_future() -> asyncio.Future[View]:
    future: asyncio.Future[View] = asyncio.get_running_loop().create_future()
    # A poll may fail while nobody is awaiting it (every trigger between two polls): mark the
    # error as seen so asyncio does not log "exception was never retrieved" for it.
    future.add_done_callback(_seen)
    return future


def _seen(future: asyncio.Future[View]) -> None:
    if not future.cancelled():
        future.exception()


def _new_hook(d6_conn_id: str) -> D6AsyncHook:
    # Imported here: aiohttp is only needed where triggers run (the triggerer), not in every DAG
    # file that imports the sensor.
    from airflow_provider_d6.hooks.d6_async import D6AsyncHook

    return D6AsyncHook(d6_conn_id=d6_conn_id)


def poller_for(d6_conn_id: str) -> ClientIntegrationPoller:
    """Return the poller of *d6_conn_id* in the running event loop, creating it if needed.

    :param d6_conn_id: the d6 connection
    """
    loop = asyncio.get_running_loop()
    pollers = _POLLERS.setdefault(loop, {})
    poller = pollers.get(d6_conn_id)
    if poller is None:
        poller = pollers[d6_conn_id] = ClientIntegrationPoller(d6_conn_id, _new_hook(d6_conn_id))
    return poller


def active_pollers() -> dict[str, ClientIntegrationPoller]:
    """Return the running event loop's pollers by connection id (a copy; for checks and tests)."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))
