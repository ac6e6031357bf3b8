"""d6's v1 conventions (Admin+ and Curriculum+), absorbed in one place for the resource mixins.

- The school id is the last path segment (``/v1/adminplus/learners/{school_id}``); the global
  lookups take none, and their optional id is a path segment. No ``HTTP-X-SCHOOLID``.
- Answers are bare arrays (one bare object for School Info), never paginated.
- 404 ``{"error": "Not found", "error_description": "No … found"}`` means "no rows": an empty
  result. 404 ``route_not_found`` and a 200 with an empty body (d6's answer to a path without a
  version) are errors, never "no data".
- ``{error, error_description}`` bodies; "Integration not activated" and "Client access not
  authorised" become ``D6NotActivatedError`` / ``D6NotAuthorisedError`` (in ``_parse``).
- Date windows are checked before any request and split into chunks d6 accepts.
- Records are coerced tolerantly (see ``coerce_v1``); ``raw=True`` keeps d6's values untouched.

Each endpoint keeps its own version in the catalogue (``_endpoints.V1_ENDPOINTS``), overridable
per hook (``D6Hook(endpoint_versions={"parents": "v3"})``). A row moved to v2 or later is called
with v2's conventions instead (school id header, ``{data, meta}`` envelope, cursor pagination),
as d6's v2 docs describe them ([gap]: no v2 Admin+/Curriculum+ route is documented yet).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from airflow_provider_d6.exceptions import D6InputError, D6NotFoundError
from airflow_provider_d6.hooks._endpoints import Endpoint
from airflow_provider_d6.hooks._parse import envelope, single
from airflow_provider_d6.hooks._transport import MixinBase
from airflow_provider_d6.hooks._validate import check_bool, check_date, check_id, query_bool

# from_date/to_date may span at most 31 days ([gap]: whether inclusively is undocumented), so
# every chunk keeps to_date - from_date <= 30 days: accepted under either reading.
DATE_CHUNK_DAYS = 31
# Leavers: since/until at most one year apart; chunks of 365 days inclusive (gap of 364).
LEAVER_CHUNK_DAYS = 365
# A bound on one call's total range, so a bad parameter cannot turn into thousands of requests.
MAX_RANGE_DAYS = 3660
MAX_GRADE_IDS = 100
_VERSION = re.compile(r"v[1-9][0-9]?\Z")


def date_chunks(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """Split the inclusive range [start, end] into consecutive inclusive chunks of *days* days.

    Every day is in exactly one chunk: chunk n ends the day before chunk n + 1 starts.
    """
    chunks = []
    step = timedelta(days=days - 1)
    while start <= end:
        stop = min(start + step, end)
        chunks.append((start, stop))
        start = stop + timedelta(days=1)
    return chunks


def _check_ids(value: Any, field: str) -> str:
    """One id, a list of ids or a comma-separated string of ids -> ``"1,2,3"``."""
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
    else:
        items = [value]
    ids = [check_id(item.strip() if isinstance(item, str) else item, field) for item in items]
    if not ids or len(ids) > MAX_GRADE_IDS:
        raise D6InputError(
            f"expected 1 to {MAX_GRADE_IDS} ids, got {len(ids)}",
            field=field,
            allowed="an id or a list of ids",
        )
    return ",".join(str(i) for i in dict.fromkeys(ids))


def check_v1_filters(
    endpoint: Endpoint, filters: Mapping[str, Any], *, today: date | None = None
) -> list[dict[str, Any]]:
    """Validate *filters* for a v1 *endpoint*; return the query parameters of each request.

    One dict for most calls; several when a date window is longer than d6 accepts, in date order
    and covering each day exactly once. ``None`` values mean "not given".
    """
    allowed = endpoint.filters
    params: dict[str, Any] = {}
    for name, value in filters.items():
        kind = allowed.get(name)
        if kind is None:
            choices = ", ".join(sorted(allowed)) or "none"
            raise D6InputError(f"unknown filter for {endpoint.name}", field=name, allowed=choices)
        if value is None:
            continue
        if kind == "int":
            params[name] = check_id(value, name)
        elif kind == "bool":
            params[name] = query_bool(check_bool(value, name))
        elif kind == "date":
            params[name] = check_date(value, name)
        elif kind == "ids":
            params[name] = _check_ids(value, name)
        elif isinstance(kind, tuple):
            text = value.strip().lower() if isinstance(value, str) else value
            if text not in kind:
                raise D6InputError(
                    f"unexpected value {value!r}", field=name, allowed=", ".join(kind)
                )
            params[name] = text
    for name in endpoint.required:
        if name not in params:
            raise D6InputError(
                f"{endpoint.name} needs {name}", field=name, allowed="a positive integer id"
            )
    today = today or date.today()
    if endpoint.window == "dates":
        return _split(params, "from_date", "to_date", DATE_CHUNK_DAYS, today)
    if endpoint.window == "leavers":
        if params.get("status") != "left":
            for name in ("since", "until"):
                if name in params:
                    raise D6InputError(
                        "since/until select leavers: they need status='left'",
                        field=name,
                        allowed="status='left' with since and/or until",
                    )
            return [params]
        # d6's defaults, applied here so that the window can be checked and split: until today,
        # since one month (30 days) before until.
        until = params.setdefault("until", today)
        params.setdefault("since", until - timedelta(days=30))
        return _split(params, "since", "until", LEAVER_CHUNK_DAYS, today)
    return [params]


def _split(
    params: dict[str, Any], first: str, last: str, days: int, today: date
) -> list[dict[str, Any]]:
    start, end = params.get(first), params.get(last)
    if start is None and end is None:
        return [params]  # d6's default window (the last month)
    if start is None or end is None:
        missing = first if start is None else last
        raise D6InputError(
            f"{first} and {last} go together: give both or neither",
            field=missing,
            allowed=f"{first} and {last} (YYYY-MM-DD), or neither for d6's default",
        )
    if end < start:
        raise D6InputError(
            f"{last} {end} is before {first} {start}", field=last, allowed=f">= {first}"
        )
    if (end - start).days >= MAX_RANGE_DAYS:
        raise D6InputError(
            f"the range {start} to {end} is too long",
            field=first,
            allowed=f"at most {MAX_RANGE_DAYS} days (call again for older data)",
        )
    return [
        {**params, first: a.isoformat(), last: b.isoformat()}
        for a, b in date_chunks(start, end, days)
    ]


# -- records ----------------------------------------------------------------------------------


def _to_int(value: str) -> int | str:
    stripped = value.strip()
    if stripped.isdigit() or (stripped[:1] == "-" and stripped[1:].isdigit()):
        return int(stripped)
    return value


def _decimal_text(value: str) -> str:
    # Money and marks stay exact decimal strings ("80.00"): JSON-safe for exports, and
    # Decimal(value) is exact for callers who compute with them.
    stripped = value.strip()
    try:
        return stripped if Decimal(stripped).is_finite() else value
    except InvalidOperation:
        return value


def v1_field_type(endpoint: Endpoint, key: str) -> str | None:
    """Return what ``coerce_v1`` makes of a v1 field's text: its type as lineage reports it.

    ``"integer"`` (ids and the row's integer fields), ``"decimal"`` (money and marks, kept as
    exact decimal text), ``"string"`` (codes that may start with 0) or None (passed on as d6
    sends it: names, dates, free text). A value that does not parse stays text (see
    ``coerce_v1``).

    :param endpoint: the v1 row
    :param key: the field
    """
    if key in endpoint.text_fields:
        return "string"
    if key in endpoint.decimal_fields or key in ("gross_annual_income", "mark"):
        return "decimal"
    if (
        key in endpoint.id_fields
        or key in endpoint.int_fields
        or key == "id"
        or key.endswith("_id")
    ):
        return "integer"
    return None


def coerce_v1(record: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """Return *record* with d6's v1 strings made useful, tolerantly.

    - ids (``id``, ``*_id`` and the row's id fields) and the row's integer fields
      (``discipline_points`` signed, ``year``, ``term``) become ``int`` when they hold an integer;
      values that already arrive as ints stay so; anything else passes unchanged (staff
      ``marital_status_id`` holds text);
    - codes (``family_code``, ``sace_number``, ``id_number``, ``emis_number``,
      ``passport_number``) stay strings: they may start with 0;
    - money and marks (``gross_annual_income``, ``mark``) stay exact decimal strings;
    - ``""`` (d6's empty value) becomes ``None``; dates stay ``YYYY-MM-DD`` strings;
    - embedded records (``parents``, ``terms``) get the same treatment.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value.__class__ is str:
            kind = v1_field_type(endpoint, key)
            if value == "":
                value = None
            elif kind == "decimal":
                value = _decimal_text(value)
            elif kind == "integer":
                value = _to_int(value)
        elif key in endpoint.nested and isinstance(value, list):
            value = [coerce_v1(v, endpoint) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def flatten_terms(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one row per term of a per-subject row (the subject's fields, then the term's).

    A subject with no terms yields one row with ``term`` None, so that no subject is lost.
    """
    terms = row.get("terms")
    base = {k: v for k, v in row.items() if k != "terms"}
    if not isinstance(terms, list) or not terms:
        yield {**base, "term": None}
        return
    for term in terms:
        yield {**base, **term} if isinstance(term, dict) else {**base, "term": term}


def no_records(err: D6NotFoundError) -> bool:
    """Say whether a 404 is d6's "No … found" (no rows), not an unknown route or id."""
    if err.route_not_found or not isinstance(err.body, dict):
        return False
    description = err.body.get("error_description")
    return isinstance(description, str) and description.strip().lower().startswith("no ")


class V1Transport(MixinBase):
    """Request building and answer handling for v1 rows, over the hook's transport."""

    if TYPE_CHECKING:
        endpoint_versions: Mapping[str, str]

    def _v1_resolve(self, endpoint: Endpoint) -> Endpoint:
        """Return *endpoint* at the version this hook uses for it (the row's, or an override)."""
        overrides = getattr(self, "endpoint_versions", None) or {}
        version = overrides.get(endpoint.name)
        if version is None or version == endpoint.version:
            return endpoint
        if not isinstance(version, str) or not _VERSION.match(version):
            raise D6InputError(
                f"bad API version {version!r} for {endpoint.name}",
                field="endpoint_versions",
                allowed="v1, v2, v3, ...",
            )
        rest = endpoint.path.split("/", 2)[2]
        return replace(endpoint, path=f"/{version}/{rest}")

    def _v1_get(
        self,
        endpoint: Endpoint,
        school_id: int | None,
        params: Mapping[str, Any],
        item: int | None = None,
    ) -> list[dict[str, Any]]:
        """Make one call; return its records (School Info: a list of one), ``[]`` for "No … found"."""
        if endpoint.version != "v1":
            return self._later_version_get(endpoint, school_id, params, item)
        path = endpoint.path
        if endpoint.school_scoped:
            path = f"{path}/{school_id}"
        elif item is not None:
            path = f"{path}/{item}"
        try:
            payload = self._send("GET", path, params=dict(params) or None)
        except D6NotFoundError as err:
            if endpoint.single_object or item is not None or not no_records(err):
                raise
            return []
        url = self.base_url + path
        if endpoint.single_object:
            return [single(payload, method="GET", url=url)]
        return envelope(payload, method="GET", url=url)[0]

    def _later_version_get(
        self,
        endpoint: Endpoint,
        school_id: int | None,
        params: Mapping[str, Any],
        item: int | None,
    ) -> list[dict[str, Any]]:
        # v2 conventions ([gap] for these modules): school header, id in the path, envelope.
        path = f"{endpoint.path}/{item}" if item is not None else endpoint.path
        if endpoint.single_object or item is not None:
            payload = self._send("GET", path, school_id=school_id)
            return [single(payload, method="GET", url=self.base_url + path)]
        try:
            return list(
                self._iter_endpoint(replace(endpoint, paginated=True), school_id, dict(params))
            )
        except D6NotFoundError as err:
            if not no_records(err):
                raise
            return []

    def _v1_stream(
        self,
        endpoint: Endpoint,
        school_id: Any,
        filters: Mapping[str, Any],
        *,
        raw: bool = False,
        item: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """Check everything now; return a generator of the records of every chunk, in order."""
        endpoint = self._v1_resolve(endpoint)
        school_id = self._v1_school(endpoint, school_id)
        chunks = check_v1_filters(endpoint, filters)
        if item is not None:
            item = check_id(item, endpoint.id_param or "id")
        raw = check_bool(raw, "raw")
        return self._v1_generate(endpoint, school_id, chunks, raw, item)

    def _v1_school(self, endpoint: Endpoint, school_id: Any) -> int | None:
        if endpoint.school_scoped:
            return check_id(school_id, "school_id")
        if school_id is not None:
            raise D6InputError(
                f"{endpoint.name} is the same for every school: it takes no school id",
                field="school_id",
                allowed="None",
            )
        return None

    def _v1_generate(
        self,
        endpoint: Endpoint,
        school_id: int | None,
        chunks: list[dict[str, Any]],
        raw: bool,
        item: int | None,
    ) -> Iterator[dict[str, Any]]:
        for params in chunks:
            rows = self._v1_get(endpoint, school_id, params, item)
            for row in rows:
                if endpoint.single_object and school_id is not None:
                    row = {"school_id": school_id, **row}
                yield row if raw else coerce_v1(row, endpoint)
            del rows
        if len(chunks) > 1:
            self.log.info("d6 %s: %d date windows read", endpoint.name, len(chunks))
