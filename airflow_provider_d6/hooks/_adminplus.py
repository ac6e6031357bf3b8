"""Admin+ (v1) methods of D6Hook: lookups, school info, learners, absentees, discipline,
parents and staff (CONTRACT-V1.md §3).

Every method checks its input when called (before any request) and, for ``iter_*``, produces the
records lazily. ``raw=True`` returns d6's records untouched (all strings, ``""`` for empty);
otherwise they are coerced as ``_v1.coerce_v1`` says.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from airflow_provider_d6.hooks._endpoints import V1_ENDPOINTS
from airflow_provider_d6.hooks._v1 import V1Transport

DateLike = date | str


class AdminPlusMethods(V1Transport):
    """Typed Admin+ methods; mixed into D6Hook, which provides the transport."""

    # -- global lookups (the same for every school: no school id) -----------------------------

    def get_ethnic_groups(
        self, ethnic_group_id: int | None = None, *, raw: bool = False
    ) -> list[dict[str, Any]]:
        """Return d6's ethnic groups (``id``, ``name``), or the one with *ethnic_group_id*.

        An unknown id raises ``D6NotFoundError``.
        """
        return list(
            self._v1_stream(V1_ENDPOINTS["ethnic_groups"], None, {}, raw=raw, item=ethnic_group_id)
        )

    def get_genders(self, *, raw: bool = False) -> list[dict[str, Any]]:
        """Return d6's genders (``id``, ``name``; records themselves carry ``"M"``/``"F"``).

        d6's Genders page is missing from its docs ([gap]): the route is the one a live client
        uses; its shape is assumed to be the other lookups'.
        """
        return list(self._v1_stream(V1_ENDPOINTS["genders"], None, {}, raw=raw))

    def get_languages(
        self, language_id: int | None = None, *, raw: bool = False
    ) -> list[dict[str, Any]]:
        """Return d6's languages (``id``, ``name``: 1 Afrikaans, 2 English, ...).

        The Language(s) page is missing from d6's docs ([gap]): the route is inferred from the
        other lookups (``lookup/language``).
        """
        return list(self._v1_stream(V1_ENDPOINTS["languages"], None, {}, raw=raw, item=language_id))

    def get_marital_statuses(
        self, marital_status_id: int | None = None, *, raw: bool = False
    ) -> list[dict[str, Any]]:
        """Return d6's marital statuses (``id``, ``name``), or one by id."""
        return list(
            self._v1_stream(
                V1_ENDPOINTS["marital_statuses"], None, {}, raw=raw, item=marital_status_id
            )
        )

    # -- per school --------------------------------------------------------------------------

    def get_grades(
        self, school_id: int, grade_id: int | None = None, *, raw: bool = False
    ) -> list[dict[str, Any]]:
        """Return the school's grades (``id``, ``name``; schools may rename and add grades)."""
        return list(
            self._v1_stream(V1_ENDPOINTS["grades"], school_id, {"grade_id": grade_id}, raw=raw)
        )

    def get_school_info(self, school_id: int, *, raw: bool = False) -> dict[str, Any]:
        """Return the school's Admin+ information: one record, with ``school_id`` added.

        Raises ``D6NotFoundError`` when d6 has no record, ``D6NotActivatedError`` when Admin+ is
        not activated for the school, ``D6NotAuthorisedError`` when it never authorised us.
        """
        return next(self._v1_stream(V1_ENDPOINTS["school_info"], school_id, {}, raw=raw))

    def iter_adminplus_learners(
        self,
        school_id: int,
        *,
        status: str | None = None,
        since: DateLike | None = None,
        until: DateLike | None = None,
        learner_id: int | None = None,
        grade_id: int | Sequence[int] | str | None = None,
        include_parents: bool | None = None,
        raw: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield the school's Admin+ learner records (current learners by default).

        :param school_id: the school
        :param status: ``current`` (d6's default), ``left`` or ``waitlist``
        :param since: with ``status="left"``: learners who left on or after this day (default:
            30 days before *until*)
        :param until: with ``status="left"``: ... and on or before this day (default: today). A
            range longer than d6's one year is read in yearly chunks, every day once.
        :param learner_id: one learner
        :param grade_id: one grade id or a list of them (ids from ``get_grades``)
        :param include_parents: embed ``parents`` (parent/guardian 1 then 2); needs d6's Parent
            API subscription
        :param raw: d6's records untouched
        """
        filters = {
            "status": status,
            "since": since,
            "until": until,
            "learner_id": learner_id,
            "grade_id": grade_id,
            "include_parents": include_parents,
        }
        return self._v1_stream(V1_ENDPOINTS["adminplus_learners"], school_id, filters, raw=raw)

    def iter_absentees(
        self,
        school_id: int,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        learner_id: int | None = None,
        raw: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield absentee rows (one per learner per day absent), leavers' included.

        :param school_id: the school
        :param from_date: first day (inclusive); give both dates or neither (d6's default: the
            last month)
        :param to_date: last day (inclusive). Ranges over d6's 31 days are read in 31-day chunks,
            every day exactly once; at most ten years per call.
        :param learner_id: one learner
        :param raw: d6's records untouched
        """
        filters = {"from_date": from_date, "to_date": to_date, "learner_id": learner_id}
        return self._v1_stream(V1_ENDPOINTS["absentees"], school_id, filters, raw=raw)

    def iter_discipline(
        self,
        school_id: int,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        learner_id: int | None = None,
        raw: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield discipline rows: violations (negative ``discipline_points``) and recognitions.

        Same window rules as ``iter_absentees``; ``staff_member_id`` is who recorded it.
        """
        filters = {"from_date": from_date, "to_date": to_date, "learner_id": learner_id}
        return self._v1_stream(V1_ENDPOINTS["discipline"], school_id, filters, raw=raw)

    def iter_parents(
        self, school_id: int, *, parent_id: int | None = None, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield the parents of the school's current learners (or one by *parent_id*).

        Parent ids are the Finance+ ``parent1_id``/``parent2_id``/``accountable_person_id``;
        ``family_code`` links a parent to the family's learners.
        """
        return self._v1_stream(
            V1_ENDPOINTS["parents"], school_id, {"parent_id": parent_id}, raw=raw
        )

    def iter_staff_members(
        self, school_id: int, *, staff_member_id: int | None = None, raw: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield the school's current staff (or one by *staff_member_id*).

        ``marital_status_id`` holds text in d6's answers and is passed through as is.
        """
        return self._v1_stream(
            V1_ENDPOINTS["staff_members"], school_id, {"staff_member_id": staff_member_id}, raw=raw
        )
