"""Finance+ (debt management) methods of D6Hook: schools, learners, debtor notes and reports.

Every call here except Get Schools carries ``HTTP-X-SCHOOLID``, which is why the school id is the
first argument. The transport (``_send``, pagination, errors, retries) is ``D6Transport``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from airflow_provider_d6.exceptions import (
    D6ConnectionError,
    D6NotFoundError,
    D6RateLimitError,
    D6ResponseError,
    D6ServerError,
)
from airflow_provider_d6.hooks._endpoints import ENDPOINTS, coerce_ids
from airflow_provider_d6.hooks._parse import single
from airflow_provider_d6.hooks._transport import MixinBase
from airflow_provider_d6.hooks._validate import check_date, check_id, check_note, query_bool

if TYPE_CHECKING:
    from airflow_provider_d6.hooks._endpoints import Endpoint

SCHOOLS = ENDPOINTS["schools"]
NOTES = ENDPOINTS["notes"]
PROMISES = ENDPOINTS["promises_to_pay"]


class DebtManagementMethods(MixinBase):
    """Typed Finance+ debt-management methods; mixed into D6Hook, which provides the transport."""

    # -- schools, people, lookups ----------------------------------------------------------

    def iter_schools(self) -> Iterator[dict[str, Any]]:
        """Yield the schools that authorised this integrator (no school header)."""
        return self._iter_resource(SCHOOLS, None, {})

    def get_school(self, school_id: int) -> dict[str, Any]:
        """Return one school; raises ``D6NotFoundError`` for an unknown id."""
        return self._get_one(SCHOOLS, None, check_id(school_id, "school_id"))

    def iter_learners(self, school_id: int, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield a school's learners (active accounts unless ``all_accounts=True``).

        :param school_id: the school
        :param filters: ``all_accounts``, ``include_parents``, ``include_accountable_person``,
            ``learner_id``, ``debtor_code``, ``accountable_person_id``, ``parent_id``, ``reverse_order``
        """
        return self._iter_resource(ENDPOINTS["learners"], school_id, filters)

    def get_learner(self, school_id: int, learner_id: int) -> dict[str, Any]:
        """Return one learner."""
        return self._get_one(ENDPOINTS["learners"], check_id(school_id, "school_id"), learner_id)

    def iter_accountable_persons(self, school_id: int, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield a school's accountable persons (the people who pay the fees).

        :param school_id: the school
        :param filters: ``all_accounts``, ``include_learners``, ``debtor_code``, ``accountable_person_id``
        """
        return self._iter_resource(ENDPOINTS["accountable_persons"], school_id, filters)

    def get_accountable_person(self, school_id: int, accountable_person_id: int) -> dict[str, Any]:
        """Return one accountable person."""
        return self._get_one(
            ENDPOINTS["accountable_persons"],
            check_id(school_id, "school_id"),
            accountable_person_id,
        )

    def get_transaction_types(self, school_id: int) -> list[dict[str, Any]]:
        """Return the school's transaction types (General Journal, Receipt, ...)."""
        return list(self._iter_resource(ENDPOINTS["transaction_types"], school_id, {}))

    def get_transaction_categories(self, school_id: int) -> list[dict[str, Any]]:
        """Return the school's transaction categories (School Fees, Hostel Fees, ...)."""
        return list(self._iter_resource(ENDPOINTS["transaction_categories"], school_id, {}))

    def get_communication_types(self, school_id: int) -> list[dict[str, Any]]:
        """Return the communication types a note can record (SMS, E-mail, ...)."""
        return list(self._iter_resource(ENDPOINTS["communication_types"], school_id, {}))

    def get_note_types(self, school_id: int) -> list[dict[str, Any]]:
        """Return the note types (1 Text note, 2 Promise to pay, 3 Internal note)."""
        return list(self._iter_resource(ENDPOINTS["note_types"], school_id, {}))

    # -- reports ---------------------------------------------------------------------------

    def iter_age_analysis(self, school_id: int, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield the age analysis rows (per family by default; see ``per_learner``/``per_category``)."""
        return self._iter_resource(ENDPOINTS["age_analysis"], school_id, filters)

    def iter_financial_transactions(
        self, school_id: int, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield financial transaction rows; ``end_date`` needs ``start_date``."""
        return self._iter_resource(ENDPOINTS["financial_transactions"], school_id, filters)

    # -- debtor notes ----------------------------------------------------------------------

    def iter_notes(self, school_id: int, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield debtor notes.

        :param school_id: the school
        :param filters: ``note_type_id``, ``communication_type_id``, ``accountable_person_id``,
            ``debtor_code``, ``year``, ``include_deleted``, ``include_promise_to_pays``, ``reverse_order``
        """
        return self._iter_resource(NOTES, school_id, filters)

    def get_note(self, school_id: int, note_id: int) -> dict[str, Any]:
        """Return one debtor note."""
        return self._get_one(NOTES, check_id(school_id, "school_id"), note_id)

    def find_note(
        self,
        school_id: int,
        *,
        accountable_person_id: int,
        date: date | str,
        note_type_id: int,
        communication_type_id: int | None = None,
        note: str | None = None,
    ) -> dict[str, Any] | None:
        """Return the newest live note with exactly these fields, or None.

        :param school_id: the school
        :param accountable_person_id: the debtor
        :param date: the note date
        :param note_type_id: the note type
        :param communication_type_id: the communication type (not compared when None)
        :param note: the note text (None and "" are the same)
        """
        school_id = check_id(school_id, "school_id")
        params: dict[str, Any] = {
            "accountable_person_id": check_id(accountable_person_id, "accountable_person_id"),
            "note_type_id": check_id(note_type_id, "note_type_id"),
            # Create Note answers with ``promise_to_pays`` (``[]`` for none); asking the list for
            # them too gives a found note the same shape as a created one.
            "include_promise_to_pays": query_bool(True),
        }
        if communication_type_id is not None:
            params["communication_type_id"] = check_id(
                communication_type_id, "communication_type_id"
            )
        day, text = check_date(date, "date").isoformat(), note or ""
        best: dict[str, Any] | None = None
        for record in self._iter_endpoint(NOTES, school_id, params):
            if record.get("status") == "Deleted" or str(record.get("date") or "")[:10] != day:
                continue
            if (record.get("note") or "") != text:
                continue
            if (
                communication_type_id is not None
                and record.get("communication_type_id") != params["communication_type_id"]
            ):
                continue
            if best is None or _note_id(record) > _note_id(best):
                best = record
        return best

    def create_note(
        self,
        school_id: int,
        *,
        accountable_person_id: int,
        date: date | str,
        note_type_id: int,
        communication_type_id: int | None = None,
        note: str | None = None,
        promise_to_pays: list[dict[str, Any]] | None = None,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create a debtor note, exactly once, and return it.

        Create Note has no idempotency key, so the POST is never blindly re-sent: after an
        ambiguous failure (dropped connection, timeout, 5xx) the hook looks for the note first and
        returns it when it landed. With *if_not_exists*, an identical live note is looked for
        before the first POST too (so an Airflow task retry never adds a second note).

        :param school_id: the school
        :param accountable_person_id: the debtor
        :param date: the note date (from January 1 last year to December 31 next year)
        :param note_type_id: 1 text note, 2 promise to pay, 3 internal note
        :param communication_type_id: required except for internal notes
        :param note: the note text
        :param promise_to_pays: for note type 2: ``[{"date_promised", "amount_promised"}, ...]``
        :param if_not_exists: return an identical existing live note instead of creating one
        """
        school_id = check_id(school_id, "school_id")
        fields = {
            "accountable_person_id": accountable_person_id,
            "date": date,
            "note_type_id": note_type_id,
            "communication_type_id": communication_type_id,
            "note": note,
            "promise_to_pays": promise_to_pays,
        }
        body = check_note(fields, today=_today())
        lookup: dict[str, Any] = {
            k: body.get(k)
            for k in (
                "accountable_person_id",
                "date",
                "note_type_id",
                "communication_type_id",
                "note",
            )
        }
        if if_not_exists:
            existing = self.find_note(school_id, **lookup)
            if existing is not None:
                self.log.info(
                    "d6 note %s already exists; not creating another", existing.get("note_id")
                )
                return existing
        return self._write_once(
            "Create Note",
            lambda: self._write_result(
                NOTES,
                self._send("POST", NOTES.path, json=body, school_id=school_id, idempotent=False),
                "POST",
                NOTES.path,
            ),
            landed=lambda: self.find_note(school_id, **lookup),
        )

    def update_note(self, school_id: int, note_id: int, **fields: Any) -> dict[str, Any]:
        """Change a note's fields (and promises: with ``promise_to_pay_id`` to change one).

        :param school_id: the school
        :param note_id: the note
        :param fields: ``accountable_person_id``, ``date``, ``note_type_id``,
            ``communication_type_id``, ``note``, ``promise_to_pays``, ``status``
        """
        school_id, note_id = check_id(school_id, "school_id"), check_id(note_id, "note_id")
        body = check_note(fields, today=_today(), updating=True)
        # A promise without an id is created by the PATCH; d6 rejects an equal duplicate, but an
        # ambiguous failure must still surface rather than be retried blindly.
        idempotent = all("promise_to_pay_id" in p for p in body.get("promise_to_pays", ()))
        path = f"{NOTES.path}/{note_id}"
        payload = self._send("PATCH", path, json=body, school_id=school_id, idempotent=idempotent)
        return self._write_result(NOTES, payload, "PATCH", path)

    def delete_note(self, school_id: int, note_id: int) -> dict[str, Any]:
        """Soft-delete a note; returns d6's answer (``{"status": "Deleted"}``)."""
        school_id, note_id = check_id(school_id, "school_id"), check_id(note_id, "note_id")
        return self._delete(NOTES, school_id, note_id, lambda: self.get_note(school_id, note_id))

    def restore_note(self, school_id: int, note_id: int) -> dict[str, Any]:
        """Restore a soft-deleted note (Update Note with status "Created")."""
        return self.update_note(school_id, note_id, status="Created")

    # -- promises to pay -------------------------------------------------------------------

    def iter_promises_to_pay(self, school_id: int, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield promise-to-pay records.

        :param school_id: the school
        :param filters: ``accountable_person_id``, ``debtor_code``, ``year_promised``,
            ``promise_completed`` (Yes/No/Partial), ``include_debtor_note``, ``reverse_order``
        """
        return self._iter_resource(PROMISES, school_id, filters)

    def get_promise_to_pay(self, school_id: int, promise_to_pay_id: int) -> dict[str, Any]:
        """Return one promise-to-pay record."""
        return self._get_one(PROMISES, check_id(school_id, "school_id"), promise_to_pay_id)

    def delete_promise_to_pay(self, school_id: int, promise_to_pay_id: int) -> dict[str, Any]:
        """Delete a promise to pay; returns d6's answer (``{"status": "Deleted"}``)."""
        school_id = check_id(school_id, "school_id")
        promise_id = check_id(promise_to_pay_id, "promise_to_pay_id")
        return self._delete(
            PROMISES, school_id, promise_id, lambda: self.get_promise_to_pay(school_id, promise_id)
        )

    def _delete(
        self, endpoint: Endpoint, school_id: int, record_id: int, read: Callable[[], Any]
    ) -> dict[str, Any]:
        """DELETE once: after an ambiguous failure, a record that is gone counts as deleted.

        A blind re-send would answer 404 "already deleted" for a delete that did succeed.
        """
        path = f"{endpoint.path}/{record_id}"

        def gone() -> dict[str, Any] | None:
            try:
                read()
            except D6NotFoundError:
                return {"status": "Deleted"}
            return None

        def send() -> dict[str, Any]:
            payload = self._send(
                "DELETE", path, school_id=school_id, idempotent=False, allow_empty=True
            )
            return payload if isinstance(payload, dict) else {"status": "Deleted"}

        return self._write_once(f"DELETE {endpoint.name}", send, landed=gone)

    def _write_once(
        self,
        what: str,
        send: Callable[[], dict[str, Any]],
        landed: Callable[[], dict[str, Any] | None],
    ) -> dict[str, Any]:
        """Send a write that must not be repeated blindly; after an ambiguous failure ask
        *landed* whether it took effect (returning its result) before sending it again.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return send()
            except (D6ConnectionError, D6ServerError) as err:
                if isinstance(err, D6ServerError) and not self.retry_policy.is_ambiguous(
                    status=err.status_code
                ):
                    raise
                timed_out = isinstance(err, D6ConnectionError) and err.timed_out
                found = self._await_late_write(what, landed) if timed_out else landed()
                if found is not None:
                    self.log.warning(
                        "d6 %s failed ambiguously (%s) but took effect", what, type(err).__name__
                    )
                    return found
                if isinstance(err, D6ConnectionError) and err.timed_out:
                    # d6 received the request and may still apply it: sending it again could
                    # write twice. Fail instead; a task retry looks for the result before writing.
                    raise D6ConnectionError(
                        f"d6 did not answer {what} in time and it has not taken effect yet; not "
                        "sent again because d6 may still apply it (a retry looks for it first)",
                        method=err.method,
                        url=err.url,
                        timed_out=True,
                    ) from err
                if attempt >= self.retry_policy.max_attempts:
                    raise
                delay = self.retry_policy.wait(attempt)
                self.log.warning(
                    "d6 %s failed (%s) and did not take effect; sending again in %.2fs",
                    what,
                    type(err).__name__,
                    delay,
                )
                time.sleep(delay)

    def _await_late_write(
        self, what: str, landed: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Look again for a timed-out write for a while, as d6 may still finish it.

        d6 keeps working on a request after the client gave up on it. How long is undocumented
        ([gap]); twice the timeout (at least 2 s) covers a server that is slow rather than stuck.
        """
        window = max(2 * float(self.settings.timeout), 2.0)
        deadline = time.monotonic() + window
        self.log.warning(
            "d6 did not answer %s in time; watching up to %.1fs for it to take effect", what, window
        )
        pause = 0.25
        while True:
            try:
                found = landed()
            except (D6ConnectionError, D6ServerError, D6RateLimitError, D6ResponseError) as err:
                # A lookup that fails transiently must not end the watch early: giving up while
                # the write is still in flight is what would let a retry write it twice.
                self.log.warning("looking for %s failed (%s); looking again", what, err.message)
                found = None
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)

    def _write_result(
        self, endpoint: Endpoint, payload: Any, method: str, path: str
    ) -> dict[str, Any]:
        return coerce_ids(single(payload, method=method, url=self.base_url + path), endpoint)


def _note_id(record: dict[str, Any]) -> int:
    value = record.get("note_id")
    return value if isinstance(value, int) else 0


def _today() -> date:
    return date.today()
