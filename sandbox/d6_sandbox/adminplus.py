"""Admin+ routes (v1, CONTRACT-V1.md §3): lookups, school info, learners, absentees, discipline,
parents and staff; plus the v1 conventions Curriculum+ shares (school gating, errors, windows).

v1 puts the school in the path (``/v1/adminplus/learners/{school_login_id}``) and answers bare
arrays of mostly-string values, one bare object for School Info, 404 "No … records found" for an
empty result and ``{"error", "error_description"}`` for every error.

Behaviours d6's docs leave open, as this sandbox answers them ([gap], chosen and documented here):
- The routing layer (``app.Route(school_in_path=True, api_type_id=...)``) answers 401 "Client
  access not authorised" for a school that has not authorised the route's module and 403
  "Integration not activated" for one that has not activated it.
- One of ``from_date``/``to_date`` without the other is a 400; "31 days" counts inclusively, so
  ``to_date - from_date`` may be at most 30 days. The default window is the last 30 days.
- Leavers: ``until - since`` may be at most 365 days; ``since`` defaults to 30 days ago.
- ``include_parents`` (any of 1/true/yes) embeds ``parents``: parent/guardian 1 then 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from d6_sandbox import adminplus_data as ad
from d6_sandbox.protocol import D6Reply, RequestContext, json_response, v1_error

ADMIN_PLUS, CURRICULUM_PLUS = 8, 9
MODULE_NAMES = {ADMIN_PLUS: "Admin+ API", CURRICULUM_PLUS: "Curriculum+ API"}
MAX_WINDOW_DAYS = 30  # to_date - from_date: 31 calendar days counted inclusively
MAX_LEAVER_DAYS = 365
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})

V1Handler = Callable[[RequestContext], Awaitable[web.Response]]


def bad_request(description: str) -> D6Reply:
    """A v1 400."""
    return D6Reply(v1_error(400, "Bad Request", description))


def no_records(thing: str) -> web.Response:
    """d6's 404 for an empty result: ``No <thing> records found``."""
    return v1_error(404, "Not found", f"No {thing} found")


def school_view(ctx: RequestContext) -> ad.AdminSchool:
    """Return the v1 view of the path's school (the routing layer has checked its gates)."""
    district = ctx.sandbox.district
    school_id = ctx.school_id
    if school_id is None:  # the school id is missing from the path
        raise D6Reply(ctx.sandbox.route_not_found_response())
    book = district.book(school_id)
    if book.v1 is None:
        book.v1 = ad.build(district.seed, district.today, district.schools[school_id], book)
    return book.v1


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """An optional positive integer query parameter (400 when it is not one)."""
    if name not in query:
        return None
    text = query[name].strip()
    if not text.isdigit():
        raise bad_request(f"The {name} must be an integer.")
    return int(text)


def query_date(query: Mapping[str, str], name: str) -> dt.date | None:
    """An optional ``YYYY-MM-DD`` query parameter."""
    if name not in query:
        return None
    text = query[name].strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise bad_request(
            f"The {name} is not a valid date. Expected format is YYYY-MM-DD."
        ) from None


def date_window(query: Mapping[str, str], today: dt.date) -> tuple[dt.date, dt.date]:
    """``from_date``/``to_date``: both or neither, to >= from, at most 31 days inclusive."""
    start, end = query_date(query, "from_date"), query_date(query, "to_date")
    if start is None and end is None:
        return today - dt.timedelta(days=MAX_WINDOW_DAYS), today
    if start is None or end is None:
        raise bad_request("Both from_date and to_date are required when filtering by date.")
    if end < start:
        raise bad_request("The to_date may not be before the from_date.")
    if (end - start).days > MAX_WINDOW_DAYS:
        raise bad_request("The date range may not span more than 31 days.")
    return start, end


def _flag(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise bad_request(f"The {name} must be a boolean.")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def rows_or_404(rows: list[Any], thing: str) -> web.Response:
    """A bare array, or d6's 404 when there is nothing to list."""
    return json_response(rows) if rows else no_records(thing)


# -- global lookups (no school id; an optional id as the last path segment) ---------------------


def _lookup(pairs: list[tuple[int, str]], thing: str) -> V1Handler:
    records = [{"id": str(i), "name": n} for i, n in pairs]

    async def handler(ctx: RequestContext) -> web.Response:
        if ctx.item_id is None:
            return json_response(records)
        # Arrays even for one item (v1).
        found = [r for r in records if r["id"] == str(ctx.item_id)]
        return json_response(found) if found else v1_error(404, "Not found", f"No {thing} found")

    return handler


ethnic_groups = _lookup(ad.ETHNIC_GROUPS, "ethnic group(s)")
genders = _lookup(ad.GENDERS, "gender(s)")
languages = _lookup(ad.LANGUAGES, "language(s)")
marital_statuses = _lookup(ad.MARITAL_STATUSES, "marital status'")


async def grades(ctx: RequestContext) -> web.Response:
    """Grade(s): per school (names may be customised); ``grade_id`` selects one."""
    view = school_view(ctx)
    grade_id = query_int(ctx.query, "grade_id")
    rows = [g for g in view.grades if grade_id is None or g["id"] == str(grade_id)]
    return json_response(rows) if rows else v1_error(404, "Not found", "No grade(s) found")


# -- school, people -------------------------------------------------------------------------------


async def school_info(ctx: RequestContext) -> web.Response:
    """Get School Info: one bare object."""
    return json_response(school_view(ctx).info)


def _grade_ids(query: Mapping[str, str]) -> set[str] | None:
    if "grade_id" not in query:
        return None
    parts = [p.strip() for p in query["grade_id"].split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise bad_request("The grade_id must be an integer or a comma separated list of integers.")
    return {str(int(p)) for p in parts}


async def learners(ctx: RequestContext) -> web.Response:
    """Get Learner(s): current (default), left in [since, until], or waitlisted learners."""
    view = school_view(ctx)
    query = ctx.query
    status = query.get("status", "current").strip().lower() or "current"
    if status not in ("current", "left", "waitlist"):
        raise bad_request("The status must be one of: current, left, waitlist.")
    learner_id = query_int(query, "learner_id")
    wanted_grades = _grade_ids(query)
    with_parents = _flag(query, "include_parents")
    today = ctx.sandbox.district.today
    since = until = None
    if status == "left":
        since = query_date(query, "since") or today - dt.timedelta(days=MAX_WINDOW_DAYS)
        until = query_date(query, "until") or today
        if until < since:
            raise bad_request("The until date may not be before the since date.")
        if (until - since).days > MAX_LEAVER_DAYS:
            raise bad_request("The date range may not exceed 1 year.")
    label = status.capitalize()
    rows = []
    for learner in view.learners:
        if learner["status"] != label:
            continue
        if learner_id is not None and learner["id"] != str(learner_id):
            continue
        if wanted_grades is not None and learner["grade_id"] not in wanted_grades:
            continue
        if since is not None and not (
            since.isoformat() <= learner["transfer_date"] <= until.isoformat()  # type: ignore[union-attr]
        ):
            continue
        record = _public(learner)
        if with_parents:
            record["parents"] = [view.parents[p] for p in learner["_parents"]]
        rows.append(record)
    return rows_or_404(rows, "learner records")


async def learner_absentees(ctx: RequestContext) -> web.Response:
    """Get Learner Absentees: one row per learner per day absent in the window."""
    view = school_view(ctx)
    learner_id = query_int(ctx.query, "learner_id")
    start, end = date_window(ctx.query, ctx.sandbox.district.today)
    return rows_or_404(ad.absentees(view, start, end, learner_id), "learner absentee records")


async def learner_discipline(ctx: RequestContext) -> web.Response:
    """Get Learner Discipline: violations and recognitions in the window."""
    view = school_view(ctx)
    learner_id = query_int(ctx.query, "learner_id")
    start, end = date_window(ctx.query, ctx.sandbox.district.today)
    return rows_or_404(ad.discipline(view, start, end, learner_id), "learner discipline records")


async def parents(ctx: RequestContext) -> web.Response:
    """Get Parent(s): the parents of all current learners, or one by ``parent_id``."""
    view = school_view(ctx)
    parent_id = query_int(ctx.query, "parent_id")
    if parent_id is not None:
        found = view.parents.get(parent_id)
        return rows_or_404([found] if found else [], "parent records")
    ids: dict[int, None] = {}
    for learner in view.learners:
        if learner["status"] == "Current":
            ids.update(dict.fromkeys(learner["_parents"]))
    return rows_or_404([view.parents[i] for i in sorted(ids)], "parent records")


async def staff_members(ctx: RequestContext) -> web.Response:
    """Get Staff Member(s): every current staff member, or one by ``staff_member_id``."""
    view = school_view(ctx)
    staff_id = query_int(ctx.query, "staff_member_id")
    rows = [s for s in view.staff if staff_id is None or s["id"] == str(staff_id)]
    return rows_or_404(rows, "staff member records")


# Route table (path below /api -> collection handler or None, item handler, item id name).
# A None collection handler means the school id is required in the path: without it d6 answers
# route_not_found.
# The module (API type) is None for the global lookups, which take no school.
ROUTES: dict[str, tuple[V1Handler | None, V1Handler, str, int | None]] = {
    "v1/adminplus/lookup/ethnicgroup": (ethnic_groups, ethnic_groups, "ethnic_group_id", None),
    "v1/adminplus/lookup/genders": (genders, genders, "gender_id", None),
    "v1/adminplus/lookup/language": (languages, languages, "language_id", None),
    "v1/adminplus/lookup/maritalstatus": (
        marital_statuses,
        marital_statuses,
        "marital_status_id",
        None,
    ),
    "v1/adminplus/lookup/grade": (None, grades, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/school": (None, school_info, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/learners": (None, learners, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/learnerabsentees": (None, learner_absentees, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/learnerdiscipline": (None, learner_discipline, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/parents": (None, parents, "school_login_id", ADMIN_PLUS),
    "v1/adminplus/staffmembers": (None, staff_members, "school_login_id", ADMIN_PLUS),
}
