"""Create, update, delete or restore one d6 debtor note from a DAG, safely under task retries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_d6._compat import BaseOperator
from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6InputError, D6NotFoundError
from airflow_provider_d6.validation import (
    NOTE_FIELDS,
    check_choice,
    check_id,
    check_note,
    is_given,
    parse_structured,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_d6.hooks.d6 import D6Hook

ACTIONS = ("create", "update", "delete", "restore")
_ID_FIELDS = ("accountable_person_id", "note_type_id", "communication_type_id")


class D6DebtorNoteOperator(BaseOperator):
    """Write one debtor note (d6's Create/Update Note rules) and return it as d6 stores it.

    - ``create`` (default) is exactly-once: an identical live note (same debtor, date, type,
      communication type and text) is returned instead of creating a second one, and an ambiguous
      failure (dropped connection, 5xx) is resolved by looking for the note before any resend. A
      task retry therefore never leaves two notes; creating the same note twice on purpose needs
      different text or a different date.
    - ``update`` sends only the fields given (promise items with ``promise_to_pay_id`` change that
      promise, items without one add a promise).
    - ``delete`` soft-deletes; a note that is already deleted counts as success (the task's goal,
      "this note is deleted", holds), so a retry after a dropped DELETE does not fail. An id that
      never existed still fails with ``D6NotFoundError``.
    - ``restore`` brings a soft-deleted note back (Update Note with status ``"Created"``); a live
      note is left as it is.

    Every input is checked before any request, with the hook's own validation. ``amount_paid`` and
    ``promise_completed`` belong to the school and are refused.

    :param school_id: the school.
    :param action: ``"create"``, ``"update"``, ``"delete"`` or ``"restore"``.
    :param note_id: the note to change (update, delete, restore).
    :param accountable_person_id: the debtor.
    :param date: the note date, ``YYYY-MM-DD`` (from January 1 last year to December 31 next year).
    :param note_type_id: 1 text note, 2 promise to pay, 3 internal note.
    :param communication_type_id: how the debtor was contacted; required except for internal notes.
    :param note: the note text.
    :param promise_to_pays: for promise-to-pay notes: ``[{"date_promised", "amount_promised"}]``
        (amounts as decimal strings such as ``"150.00"``), or that list as JSON text.
    :param d6_conn_id: the d6 connection.
    """

    template_fields: Sequence[str] = ("school_id", "note_id", *NOTE_FIELDS)
    ui_color = "#f4efe8"

    def __init__(
        self,
        *,
        school_id: int | str,
        action: str = "create",
        note_id: int | str | None = None,
        accountable_person_id: int | str | None = None,
        date: date | str | None = None,
        note_type_id: int | str | None = None,
        communication_type_id: int | str | None = None,
        note: str | None = None,
        promise_to_pays: list[dict[str, Any]] | str | None = None,
        d6_conn_id: str = "d6_default",
        **kwargs: Any,
    ) -> None:
        self.action = check_choice(action, "action", ACTIONS)
        fields = {
            "accountable_person_id": accountable_person_id,
            "date": date,
            "note_type_id": note_type_id,
            "communication_type_id": communication_type_id,
            "note": note,
            "promise_to_pays": promise_to_pays,
        }
        # Which arguments are present is known at parse time even when their values are templated.
        if self.action == "create" and note_id is not None:
            raise D6InputError(
                "a new note has no id yet", field="note_id", allowed="None for create"
            )
        if self.action != "create" and note_id is None:
            raise D6InputError(
                f"required to {self.action} a note", field="note_id", allowed="a note id"
            )
        if self.action in ("delete", "restore"):
            given = [name for name, value in fields.items() if value is not None]
            if given:
                raise D6InputError(
                    f"{self.action} changes no note field",
                    field=given[0],
                    allowed="school_id and note_id only (use action='update' to change fields)",
                )
        super().__init__(**kwargs)
        self.school_id = school_id
        self.note_id = note_id
        self.accountable_person_id = accountable_person_id
        self.date = date
        self.note_type_id = note_type_id
        self.communication_type_id = communication_type_id
        self.note = note
        self.promise_to_pays = promise_to_pays
        self.d6_conn_id = d6_conn_id

    @cached_property
    def hook(self) -> D6Hook:
        """Return the d6 hook (built on first use, never in ``__init__``)."""
        # Imported here, not at module level: the hook pulls in requests and aiohttp
        # (through HttpHook), which would slow every DAG file that imports this module.
        from airflow_provider_d6.hooks.d6 import D6Hook

        return D6Hook(d6_conn_id=self.d6_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Apply the action and return the note."""
        school_id = check_id(self.school_id, "school_id")
        note_id = None if self.action == "create" else check_id(self.note_id, "note_id")
        fields = self._rendered_fields()
        if self.action in ("create", "update"):
            # The hook checks again; checking here too fails the task before the hook (and its
            # connection) is even built, and names the operator argument at fault.
            check_note(fields, today=date.today(), updating=self.action == "update")

        if note_id is None:
            result = self.hook.create_note(school_id, **fields, if_not_exists=True)
        elif self.action == "update":
            result = self.hook.update_note(school_id, note_id, **fields)
        elif self.action == "restore":
            result = self.hook.restore_note(school_id, note_id)
        else:
            result = self._delete(school_id, note_id)
        self.log.info(
            "d6 note %s of school %s: %s done (status %s)",
            printable(result.get("note_id", note_id)),
            school_id,
            self.action,
            printable(result.get("status")),
        )
        return result

    def _rendered_fields(self) -> dict[str, Any]:
        """Return the note fields given, converted from their rendered (string) forms."""
        fields: dict[str, Any] = {}
        for name in _ID_FIELDS:
            value = check_id(getattr(self, name), name, optional=True)
            if value is not None:
                fields[name] = value
        if is_given(self.date):
            fields["date"] = self.date.strip() if isinstance(self.date, str) else self.date
        if self.note is not None:
            fields["note"] = self.note
        if is_given(self.promise_to_pays):
            fields["promise_to_pays"] = parse_structured(
                self.promise_to_pays,
                "promise_to_pays",
                '[{"date_promised", "amount_promised"}, ...]',
            )
        return fields

    def _delete(self, school_id: int, note_id: int) -> dict[str, Any]:
        """Soft-delete the note; an already deleted note is success (see the class docstring)."""
        try:
            note = self.hook.get_note(school_id, note_id)
        except D6NotFoundError:
            # d6 hides deleted notes from Get Note: find out whether this one is deleted or unknown.
            return self._already_deleted(school_id, note_id)
        try:
            self.hook.delete_note(school_id, note_id)
        except D6NotFoundError:
            # Deleted in between, or our DELETE landed and its answer was lost before a resend.
            return self._already_deleted(school_id, note_id)
        return {**note, "status": "Deleted"}

    def _already_deleted(self, school_id: int, note_id: int) -> dict[str, Any]:
        """Return the note if d6 keeps it as deleted; raise D6NotFoundError if it never existed."""
        # Get Notes has no note id filter, so this walks the school's notes (deleted included).
        # It runs only after a 404, never on the ordinary path.
        for record in self.hook.iter_notes(school_id, include_deleted=True):
            if record.get("note_id") == note_id:
                if record.get("status") == "Deleted":
                    self.log.info("d6 note %s of school %s is already deleted", note_id, school_id)
                    return record
                break
        raise D6NotFoundError(
            f"note {note_id} does not exist in school {school_id}", status_code=404
        )


__all__ = ["ACTIONS", "NOTE_FIELDS", "D6DebtorNoteOperator"]
