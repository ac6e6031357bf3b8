"""Curriculum+ (v1) methods of D6Hook: learner subjects, subjects per term, subject marks
(CONTRACT-V1.md §4), and the school-wide fan-out over learners for the per-learner two.

Subjects Per Term and Subject Marks answer for one ``learner_id`` at a time and their rows do
not name the learner. ``iter_school_subjects_per_term`` / ``iter_school_subject_marks`` call
them for every learner of a school:

- the learners are the school-wide Learner Subjects call's (one request; it is Curriculum+ too,
  so Admin+ need not be activated), or the ids the caller gives;
- at most ``max_workers`` requests in flight, from a thread pool sharing the hook's session and
  its (thread-safe) throttle and retry policy, so 429s slow the whole fan-out down;
- rows are yielded in learner order as they arrive, with ``learner_id`` and ``school_id`` added;
  at most ``2 * max_workers`` learners' answers are held at once (constant memory);
- one learner's failure (after the hook's retries) is logged and recorded in ``failures`` and the
  others go on, unless ``on_error="raise"``; a refusal for the whole school (not activated, not
  authorised, bad credentials) always stops it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_provider_d6.exceptions import (
    D6AuthenticationError,
    D6ConfigurationError,
    D6Error,
    D6InputError,
    D6NotActivatedError,
    D6NotAuthorisedError,
)
from airflow_provider_d6.hooks._endpoints import V1_ENDPOINTS, Endpoint
from airflow_provider_d6.hooks._v1 import V1Transport, coerce_v1, flatten_terms
from airflow_provider_d6.hooks._validate import check_bool, check_id
from airflow_provider_d6.validation import check_choice, check_int

DEFAULT_WORKERS = 5  # what the live client found d6 takes well
MAX_WORKERS = 32  # the hook's connection pool
MAX_LEARNER_IDS = 200_000
ON_ERROR = ("skip", "raise")
# Refusals that concern the whole school or the credentials: no other learner can succeed.
_FATAL = (D6NotActivatedError, D6NotAuthorisedError, D6AuthenticationError, D6ConfigurationError)


def _printable(text: str, limit: int = 200) -> str:
    """*text* with control characters escaped and its length bounded, for a log line."""
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return out[:limit] + ("…" if len(out) > limit else "")


@dataclass(frozen=True)
class LearnerFailure:
    """One learner whose rows could not be read."""

    learner_id: int
    error: str  # the exception's class name
    message: str  # its message, control characters escaped


class FanOut(Iterator[dict[str, Any]]):
    """The rows of a per-learner endpoint for many learners, plus what went wrong.

    Iterate it for the rows. ``learners`` counts the learners answered so far and ``failures``
    lists those that failed (``on_error="skip"``); both are final once the iteration ends.
    ``close()`` (or leaving a ``with`` block) stops the fan-out and its threads early.
    """

    def __init__(self, run: Callable[[FanOut], Iterator[dict[str, Any]]]) -> None:
        self.learners = 0
        self.failures: list[LearnerFailure] = []
        self._rows = run(self)

    def __iter__(self) -> FanOut:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def close(self) -> None:
        """Stop: cancel what has not started, wait for what is in flight."""
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> FanOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CurriculumPlusMethods(V1Transport):
    """Typed Curriculum+ methods; mixed into D6Hook, which provides the transport."""

    def iter_learner_subjects(
        self, school_id: int, *, learner_id: int | None = None, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield one row per learner x subject of the current year (every current learner, in
        one request, unless *learner_id* is given): the cheap way to get a school's subjects.
        """
        return self._v1_stream(
            V1_ENDPOINTS["learner_subjects"], school_id, {"learner_id": learner_id}, raw=raw
        )

    def iter_learner_subjects_per_term(
        self, school_id: int, learner_id: int, *, flatten: bool = False, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield one learner's subjects of the current year with their ``terms`` (subject group,
        class and teacher per term); ``learner_id`` and ``school_id`` are added to each row.

        :param flatten: one row per subject x term instead of a ``terms`` list
        """
        return self._one_learner(
            V1_ENDPOINTS["learner_subjects_per_term"], school_id, learner_id, flatten, raw
        )

    def iter_learner_subject_marks(
        self, school_id: int, learner_id: int, *, flatten: bool = False, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield one learner's marks of the current year per subject (``terms``: ``term``,
        ``mark`` as an exact decimal string; only terms with a mark), with ``learner_id`` and
        ``school_id`` added.

        :param flatten: one row per subject x term instead of a ``terms`` list
        """
        return self._one_learner(
            V1_ENDPOINTS["learner_subject_marks"], school_id, learner_id, flatten, raw
        )

    def iter_school_subjects_per_term(
        self,
        school_id: int,
        *,
        learner_ids: Iterable[int] | None = None,
        flatten: bool = False,
        max_workers: int = DEFAULT_WORKERS,
        on_error: str = "skip",
        raw: bool = False,
    ) -> FanOut:
        """Subjects Per Term for every learner of the school (see the module docstring).

        :param school_id: the school
        :param learner_ids: the learners (default: every learner with subjects this year)
        :param flatten: one row per subject x term
        :param max_workers: requests in flight at once (1 to 32; default 5)
        :param on_error: ``skip`` (log, record in ``failures``, go on) or ``raise``
        :param raw: d6's values untouched (``learner_id`` and ``school_id`` are still added)
        """
        return self._fan_out(
            V1_ENDPOINTS["learner_subjects_per_term"],
            school_id,
            learner_ids,
            flatten,
            max_workers,
            on_error,
            raw,
        )

    def iter_school_subject_marks(
        self,
        school_id: int,
        *,
        learner_ids: Iterable[int] | None = None,
        flatten: bool = False,
        max_workers: int = DEFAULT_WORKERS,
        on_error: str = "skip",
        raw: bool = False,
    ) -> FanOut:
        """Subject Marks for every learner of the school; arguments as
        ``iter_school_subjects_per_term``.
        """
        return self._fan_out(
            V1_ENDPOINTS["learner_subject_marks"],
            school_id,
            learner_ids,
            flatten,
            max_workers,
            on_error,
            raw,
        )

    def _iter_v1_resource(
        self, endpoint: Endpoint, school_id: Any, filters: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """``iter_resource`` for a v1 row: its filters plus ``raw``; global lookups take their id
        (``ethnic_group_id``, ...); per-learner rows take ``learner_id`` (one learner) or fan out
        over the school (``learner_ids``, ``max_workers``, ``on_error``), flattened to one row per
        subject x term unless ``flatten=False``.
        """
        options = dict(filters)
        raw = options.pop("raw", False)
        if endpoint.per_learner:
            flatten = options.pop("flatten", True)
            fan = {
                k: options.pop(k)
                for k in ("learner_ids", "max_workers", "on_error")
                if k in options
            }
            learner_id = options.pop("learner_id", None)
            if options:
                allowed = "learner_id, learner_ids, flatten, max_workers, on_error, raw"
                raise D6InputError(
                    f"unknown filter for {endpoint.name}",
                    field=next(iter(options)),
                    allowed=allowed,
                )
            if learner_id is not None:
                if fan:
                    raise D6InputError(
                        "learner_id reads one learner; fan-out options need no learner_id",
                        field=next(iter(fan)),
                        allowed="learner_id alone, or learner_ids/max_workers/on_error",
                    )
                return self._one_learner(endpoint, school_id, learner_id, flatten, raw)
            return self._fan_out(
                endpoint,
                school_id,
                fan.get("learner_ids"),
                flatten,
                fan.get("max_workers", DEFAULT_WORKERS),
                fan.get("on_error", "skip"),
                raw,
            )
        item = None
        if not endpoint.school_scoped and endpoint.id_param:
            item = options.pop(endpoint.id_param, None)
        return self._v1_stream(endpoint, school_id, options, raw=raw, item=item)

    # -- internals ---------------------------------------------------------------------------

    def _one_learner(
        self, endpoint: Endpoint, school_id: Any, learner_id: Any, flatten: Any, raw: Any
    ) -> Iterator[dict[str, Any]]:
        endpoint = self._v1_resolve(endpoint)
        school = self._v1_school(endpoint, school_id)
        learner = check_id(learner_id, "learner_id")
        shape = _shaper(endpoint, school, check_bool(flatten, "flatten"), check_bool(raw, "raw"))

        def rows() -> Iterator[dict[str, Any]]:
            for row in self._v1_get(endpoint, school, {"learner_id": learner}):
                yield from shape(learner, row)

        return rows()

    def _school_learner_ids(self, school_id: int) -> Iterator[int]:
        """Every learner with subjects this year, in d6's order, from one school-wide call."""
        endpoint = self._v1_resolve(V1_ENDPOINTS["learner_subjects"])
        seen: dict[int, None] = {}
        for row in self._v1_get(endpoint, school_id, {}):
            learner = row.get("learner_id")
            try:
                seen[check_id(learner, "learner_id")] = None
            except D6InputError:
                self.log.warning(
                    "d6 learner_subjects: skipping a row with learner_id %s",
                    _printable(repr(learner)),
                )
        return iter(seen)

    def _fan_out(
        self,
        endpoint: Endpoint,
        school_id: Any,
        learner_ids: Iterable[Any] | None,
        flatten: Any,
        max_workers: Any,
        on_error: Any,
        raw: Any,
    ) -> FanOut:
        endpoint = self._v1_resolve(endpoint)
        school = self._v1_school(endpoint, school_id)
        max_workers = check_int(max_workers, "max_workers", minimum=1, maximum=MAX_WORKERS)
        on_error = check_choice(on_error, "on_error", ON_ERROR)
        ids: list[int] | None = None
        if learner_ids is not None:
            if isinstance(learner_ids, (str, bytes, dict)):
                raise D6InputError(
                    "expected a list of learner ids", field="learner_ids", allowed="[id, ...]"
                )
            ids = []
            for value in learner_ids:
                ids.append(check_id(value, "learner_ids"))
                if len(ids) > MAX_LEARNER_IDS:
                    raise D6InputError(
                        "too many learner ids", field="learner_ids", allowed=f"<= {MAX_LEARNER_IDS}"
                    )
        shape = _shaper(endpoint, school, check_bool(flatten, "flatten"), check_bool(raw, "raw"))
        assert school is not None  # per-learner endpoints are school-scoped

        def run(fan: FanOut) -> Iterator[dict[str, Any]]:
            learners = iter(ids) if ids is not None else self._school_learner_ids(school)
            pending: deque[tuple[int, Future[list[dict[str, Any]]]]] = deque()
            prefix = f"d6-fan-out-{id(fan):x}"
            pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=prefix)

            def submit() -> None:
                learner = next(learners, None)
                if learner is not None:
                    future = pool.submit(self._v1_get, endpoint, school, {"learner_id": learner})
                    pending.append((learner, future))

            try:
                for _ in range(2 * max_workers):
                    submit()
                while pending:
                    learner, future = pending.popleft()
                    try:
                        rows = future.result()
                    except _FATAL:
                        raise
                    except D6Error as err:
                        if on_error == "raise":
                            raise
                        failure = LearnerFailure(learner, type(err).__name__, _printable(str(err)))
                        fan.failures.append(failure)
                        self.log.warning(
                            "d6 %s: learner %d failed (%s: %s); going on with the others",
                            endpoint.name,
                            learner,
                            failure.error,
                            failure.message,
                        )
                        rows = []
                    submit()
                    fan.learners += 1
                    for row in rows:
                        yield from shape(learner, row)
                    del rows
            finally:
                # An abandoned fan-out may be finalised by the garbage collector in one of its
                # own workers, which cannot wait for itself.
                own = threading.current_thread().name.startswith(prefix)
                pool.shutdown(wait=not own, cancel_futures=True)
            self.log.info(
                "d6 %s: %d learner(s) read for school %d, %d failed",
                endpoint.name,
                fan.learners,
                school,
                len(fan.failures),
            )

        return FanOut(run)


def _shaper(
    endpoint: Endpoint, school_id: int | None, flatten: bool, raw: bool
) -> Callable[[int, dict[str, Any]], Iterator[dict[str, Any]]]:
    """Build the function that turns one d6 row of *learner* into output rows."""

    def shape(learner: int, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        record = row if raw else coerce_v1(row, endpoint)
        record = {"learner_id": learner, "school_id": school_id, **record}
        if flatten:
            yield from flatten_terms(record)
        else:
            yield record

    return shape
