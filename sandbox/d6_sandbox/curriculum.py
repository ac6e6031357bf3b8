"""Curriculum+ routes (v1, CONTRACT-V1.md §4): learner subjects, subjects per term, marks.

All three cover the current administrative year only. Learner Subjects is school-wide unless
``learner_id`` is given (and its ``subject_id`` is an unquoted int, as in d6's newer copy of the
page); Subjects Per Term and Subject Marks need ``learner_id`` and their rows do not name the
learner. A missing ``learner_id`` is a 400 (d6's description is cut in the docs: [gap]).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from d6_sandbox import adminplus_data as ad
from d6_sandbox.adminplus import (
    CURRICULUM_PLUS,
    V1Handler,
    bad_request,
    query_int,
    rows_or_404,
    school_view,
)
from d6_sandbox.protocol import RequestContext


def _one_learner(ctx: RequestContext, view: ad.AdminSchool) -> dict[str, Any] | None:
    learner_id = query_int(ctx.query, "learner_id")
    if learner_id is None:
        raise bad_request("The learner_id field is required.")
    return view.learner_by_id.get(learner_id)


async def learner_subjects(ctx: RequestContext) -> web.Response:
    """Get Learner Subjects: one row per learner x subject (every current learner by default)."""
    view = school_view(ctx)
    learner_id = query_int(ctx.query, "learner_id")
    if learner_id is not None:
        found = view.learner_by_id.get(learner_id)
        selected = [found] if found else []
    else:
        selected = [lr for lr in view.learners if lr["status"] == "Current"]
    rows = [
        {
            "learner_id": learner["id"],
            "first_name": learner["first_name"],
            "last_name": learner["last_name"],
            "subject_id": subject["subject_id"],
            "subject_name": subject["subject_name"],
        }
        for learner in selected
        for subject in ad.subjects(view, learner)
    ]
    return rows_or_404(rows, "learner subject records")


async def learner_subjects_per_term(ctx: RequestContext) -> web.Response:
    """Get Learner Subjects Per Term: one learner's subjects with a ``terms`` sub-array."""
    view = school_view(ctx)
    learner = _one_learner(ctx, view)
    rows = ad.per_term(view, learner) if learner else []
    return rows_or_404(rows, "learner subject records")


async def learner_subject_marks(ctx: RequestContext) -> web.Response:
    """Get Learner Subject Marks: one learner's marks per subject and term so far."""
    view = school_view(ctx)
    learner = _one_learner(ctx, view)
    rows = ad.marks(view, learner, ctx.sandbox.district.today) if learner else []
    return rows_or_404(rows, "subject mark records")


ROUTES: dict[str, tuple[V1Handler | None, V1Handler, str, int | None]] = {
    "v1/currplus/learnersubjects": (None, learner_subjects, "school_login_id", CURRICULUM_PLUS),
    "v1/currplus/learnersubjectsperterm": (
        None,
        learner_subjects_per_term,
        "school_login_id",
        CURRICULUM_PLUS,
    ),
    "v1/currplus/learnersubjectmarks": (
        None,
        learner_subject_marks,
        "school_login_id",
        CURRICULUM_PLUS,
    ),
}
