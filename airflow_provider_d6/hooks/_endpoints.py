"""The catalogue of d6 endpoints the hooks call: one row per resource.

Each row says where the resource lives (its own API version), whether it is paginated and
school-scoped (``HTTP-X-SCHOOLID``), which query filters it accepts with their types, which
fields are ids (coerced to ``int``: v1, and some v2 examples, send them as strings) and which
fields are documented (CSV headers). Adding an endpoint is one row here plus one typed method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

# Filter types understood by _validate: "int", "bool", "date", "code" (a debtor code: int or
# string), or a tuple of allowed string values.
FilterType = str | tuple[str, ...]

FINPLUS = "/v2/finplus/debtmanagement"
NOTES = f"{FINPLUS}/debtornotes"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One d6 resource: path, version, pagination, school scope, filters and fields."""

    name: str
    path: str
    paginated: bool
    school_scoped: bool
    id_param: str | None
    filters: Mapping[str, FilterType] = field(default_factory=dict)
    id_fields: frozenset[str] = frozenset()
    fields: tuple[str, ...] = ()
    nested: tuple[str, ...] = ()  # keys holding embedded records whose ids are coerced too
    # v1 Admin+/Curriculum+ rows (see _v1.py): the module's API type (8/9; None for the global
    # lookups), one bare object instead of an array, a date window to check and split
    # ("dates": from_date/to_date; "leavers": since/until), filters d6 requires, a per-learner
    # endpoint (learner_id required, rows without it), and the fields coerced beyond ids.
    api_type_id: int | None = None
    single_object: bool = False
    window: str | None = None
    required: tuple[str, ...] = ()
    per_learner: bool = False
    int_fields: frozenset[str] = frozenset()
    decimal_fields: frozenset[str] = frozenset()
    text_fields: frozenset[str] = frozenset()  # never int-coerced, whatever their name says

    @property
    def version(self) -> str:
        """Return the API version of this endpoint (``v1``, ``v2``): its path's first segment."""
        return self.path.split("/")[1]


def _row(
    name: str,
    path: str,
    *,
    paginated: bool,
    school_scoped: bool = True,
    id_param: str | None = None,
    filters: dict[str, FilterType] | None = None,
    id_fields: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
    nested: tuple[str, ...] = (),
) -> Endpoint:
    allowed = dict(filters or {})
    if paginated:
        allowed.setdefault("reverse_order", "bool")
    return Endpoint(
        name=name,
        path=path,
        paginated=paginated,
        school_scoped=school_scoped,
        id_param=id_param,
        filters=MappingProxyType(allowed),
        id_fields=frozenset(id_fields),
        fields=fields,
        nested=nested,
    )


_LOOKUP_FIELDS = ("id", "name")

ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType(
    {
        e.name: e
        for e in (
            _row(
                "client_integrations",
                "/v2/settings/clientintegrations",
                paginated=True,
                school_scoped=False,
                filters={"school_id": "int", "api_type_id": "int"},
                id_fields=("school_id", "api_type_id"),
                fields=(
                    "school_id",
                    "school_name",
                    "admin_email_address",
                    "telephone_calling_code",
                    "telephone_number",
                    "api_type_id",
                    "api_type",
                    "activated_by_integrator",
                ),
            ),
            _row(
                "schools",
                f"{FINPLUS}/schools",
                paginated=True,
                school_scoped=False,
                id_param="school_id",
                id_fields=("school_id",),
                fields=(
                    "school_id",
                    "school_name",
                    "school_short_name",
                    "ownership_type",
                    "country",
                    "province",
                    "town",
                    "suburb",
                    "district",
                    "district_code",
                    "circuit",
                    "quantile",
                    "emis_number",
                    "telephone_number",
                    "lowest_grade",
                    "highest_grade",
                    "admin_email_address",
                    "debtors_email_address",
                    "finance_email_address",
                    "physical_address",
                    "postal_address",
                    "has_after_school_center",
                    "has_hostel",
                    "uses_debit_orders",
                    "uses_cashless",
                ),
            ),
            _row(
                "learners",
                f"{FINPLUS}/learners",
                paginated=True,
                id_param="learner_id",
                filters={
                    "all_accounts": "bool",
                    "include_parents": "bool",
                    "include_accountable_person": "bool",
                    "learner_id": "int",
                    "debtor_code": "code",
                    "accountable_person_id": "int",
                    "parent_id": "int",
                },
                id_fields=(
                    "learner_id",
                    "parent1_id",
                    "parent2_id",
                    "accountable_person_id",
                    "parent_id",
                ),
                fields=(
                    "learner_id",
                    "first_name",
                    "last_name",
                    "gender",
                    "grade",
                    "debtor_code",
                    "parent1_id",
                    "parent2_id",
                    "accountable_person_id",
                ),
                nested=("parents", "accountable_person"),
            ),
            _row(
                "accountable_persons",
                f"{FINPLUS}/accountablepersons",
                paginated=True,
                id_param="accountable_person_id",
                filters={
                    "all_accounts": "bool",
                    "include_learners": "bool",
                    "debtor_code": "code",
                    "accountable_person_id": "int",
                },
                id_fields=("accountable_person_id", "learner_id"),
                # The v2 record example is a [gap] in the docs; these are the fields d6 returns in
                # the v1 record and in the sandbox.
                fields=(
                    "accountable_person_id",
                    "debtor_code",
                    "debtor_reference",
                    "title",
                    "first_name",
                    "last_name",
                    "email_address",
                    "mobile_number",
                ),
                nested=("learners",),
            ),
            _row(
                "notes",
                f"{NOTES}/notes",
                paginated=True,
                id_param="note_id",
                filters={
                    "note_type_id": "int",
                    "communication_type_id": "int",
                    "accountable_person_id": "int",
                    "debtor_code": "code",
                    "year": "int",
                    "include_deleted": "bool",
                    "include_promise_to_pays": "bool",
                },
                id_fields=(
                    "note_id",
                    "accountable_person_id",
                    "note_type_id",
                    "communication_type_id",
                    "promise_to_pay_id",
                ),
                fields=(
                    "note_id",
                    "accountable_person_id",
                    "accountable_person",
                    "debtor_code",
                    "debtor_reference",
                    "date",
                    "note_type_id",
                    "note_type",
                    "communication_type_id",
                    "communication_type",
                    "note",
                    "status",
                ),
                nested=("promise_to_pays",),
            ),
            _row(
                "promises_to_pay",
                f"{NOTES}/promisetopays",
                paginated=True,
                id_param="promise_to_pay_id",
                filters={
                    "accountable_person_id": "int",
                    "debtor_code": "code",
                    "year_promised": "int",
                    "promise_completed": ("Yes", "No", "Partial"),
                    "include_debtor_note": "bool",
                },
                id_fields=("promise_to_pay_id", "accountable_person_id", "note_id"),
                fields=(
                    "promise_to_pay_id",
                    "accountable_person_id",
                    "accountable_person",
                    "debtor_code",
                    "debtor_reference",
                    "date_promised",
                    "amount_promised",
                    "amount_paid",
                    "promise_completed",
                ),
                nested=("debtor_note",),
            ),
            _row(
                "age_analysis",
                f"{FINPLUS}/ageanalysis",
                paginated=True,
                filters={
                    "all_accounts": "bool",
                    "per_learner": "bool",
                    "per_category": "bool",
                    "debtor_code": "code",
                    "learner_id": "int",
                    "accountable_person_id": "int",
                    "category_id": "int",
                },
                id_fields=("accountable_person_id", "learner_id", "category_id"),
                # Buckets after 150 days and the total are a [gap] in the docs (sandbox shape).
                fields=(
                    "debtor_code",
                    "accountable_person_id",
                    "accountable_person",
                    "date",
                    "balance_current",
                    "balance_30days",
                    "balance_60days",
                    "balance_90days",
                    "balance_120days",
                    "balance_150days",
                    "balance_total",
                ),
            ),
            _row(
                "financial_transactions",
                f"{FINPLUS}/financialtransactions",
                paginated=True,
                filters={
                    "all_accounts": "bool",
                    "per_learner": "bool",
                    "debtor_code": "code",
                    "learner_id": "int",
                    "accountable_person_id": "int",
                    "category_id": "int",
                    "start_date": "date",
                    "end_date": "date",
                },
                id_fields=(
                    "accountable_person_id",
                    "learner_id",
                    "category_id",
                    "transaction_id",
                    "transaction_type_id",
                    "transaction_category_id",
                ),
                # Row shape is a [gap] in the docs: the sandbox's shape, unknown fields pass through.
                fields=(
                    "transaction_id",
                    "date",
                    "debtor_code",
                    "accountable_person_id",
                    "accountable_person",
                    "transaction_type_id",
                    "transaction_type",
                    "category_id",
                    "category",
                    "description",
                    "amount",
                ),
            ),
            _row(
                "transaction_types",
                f"{FINPLUS}/transactiontypes",
                paginated=False,
                id_param="id",
                id_fields=("id",),
                fields=_LOOKUP_FIELDS,
            ),
            _row(
                "transaction_categories",
                f"{FINPLUS}/transactioncategories",
                paginated=False,
                id_param="id",
                id_fields=("id",),
                fields=_LOOKUP_FIELDS,
            ),
            _row(
                "communication_types",
                f"{NOTES}/communicationtypes",
                paginated=False,
                id_param="id",
                id_fields=("id",),
                fields=_LOOKUP_FIELDS,
            ),
            _row(
                "note_types",
                f"{NOTES}/notetypes",
                paginated=False,
                id_param="id",
                id_fields=("id",),
                fields=_LOOKUP_FIELDS,
            ),
        )
    }
)

# -- Admin+ and Curriculum+ (v1 only: CONTRACT-V1.md) ---------------------------------------------
# The school id is the last path segment (global lookups take none; their optional id is a path
# segment); each row keeps its own version, so adopting a v2/v3 of one endpoint is this row.
ADMIN_PLUS, CURRICULUM_PLUS = 8, 9
_ADMIN = "/v1/adminplus"
_CURR = "/v1/currplus"
# Codes (may start with 0) and free text: never int-coerced.
_CODES = frozenset({"family_code", "sace_number", "id_number", "emis_number", "passport_number"})
_PERSON = (
    "id",
    "title",
    "first_name",
    "last_name",
    "mobile_calling_code",
    "mobile_number",
    "email_address",
    "date_of_birth",
    "gender",
)


def _v1_row(
    name: str,
    path: str,
    *,
    api_type_id: int | None,
    fields: tuple[str, ...],
    id_param: str | None = None,
    filters: dict[str, FilterType] | None = None,
    id_fields: tuple[str, ...] = ("id",),
    int_fields: tuple[str, ...] = (),
    decimal_fields: tuple[str, ...] = (),
    text_fields: frozenset[str] = _CODES,
    nested: tuple[str, ...] = (),
    single_object: bool = False,
    window: str | None = None,
    required: tuple[str, ...] = (),
    per_learner: bool = False,
) -> Endpoint:
    return Endpoint(
        name=name,
        path=path,
        paginated=False,
        # v1 sends no HTTP-X-SCHOOLID: "school_scoped" here means "takes a school id" (in the path).
        school_scoped=api_type_id is not None,
        id_param=id_param,
        filters=MappingProxyType(dict(filters or {})),
        id_fields=frozenset(id_fields),
        fields=fields,
        nested=nested,
        api_type_id=api_type_id,
        single_object=single_object,
        window=window,
        required=required,
        per_learner=per_learner,
        int_fields=frozenset(int_fields),
        decimal_fields=frozenset(decimal_fields),
        text_fields=text_fields,
    )


_SUBJECT_TERM = ("learner_id", "school_id", "year", "subject_id", "subject_name")
V1_ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType(
    {
        e.name: e
        for e in (
            _v1_row(
                "ethnic_groups",
                f"{_ADMIN}/lookup/ethnicgroup",
                api_type_id=None,
                id_param="ethnic_group_id",
                fields=_LOOKUP_FIELDS,
            ),
            # The Genders and Language(s) pages are missing from d6's docs ([gap]): the live
            # client's genders route, and a language route by analogy with the other lookups.
            _v1_row(
                "genders",
                f"{_ADMIN}/lookup/genders",
                api_type_id=None,
                fields=_LOOKUP_FIELDS,
            ),
            _v1_row(
                "languages",
                f"{_ADMIN}/lookup/language",
                api_type_id=None,
                id_param="language_id",
                fields=_LOOKUP_FIELDS,
            ),
            _v1_row(
                "marital_statuses",
                f"{_ADMIN}/lookup/maritalstatus",
                api_type_id=None,
                id_param="marital_status_id",
                fields=_LOOKUP_FIELDS,
            ),
            _v1_row(
                "grades",
                f"{_ADMIN}/lookup/grade",
                api_type_id=ADMIN_PLUS,
                filters={"grade_id": "int"},
                fields=_LOOKUP_FIELDS,
            ),
            _v1_row(
                "school_info",
                f"{_ADMIN}/school",
                api_type_id=ADMIN_PLUS,
                single_object=True,
                id_fields=(),
                fields=(
                    "school_id",
                    "school_name",
                    "admin_email_address",
                    "telephone_calling_code",
                    "telephone_number",
                    "website",
                    "physical_address",
                    "quantile",
                    "medium",
                    "emis_number",
                    "country",
                    "province",
                    "tuition_languages",
                ),
            ),
            _v1_row(
                "adminplus_learners",
                f"{_ADMIN}/learners",
                api_type_id=ADMIN_PLUS,
                filters={
                    "status": ("current", "left", "waitlist"),
                    "since": "date",
                    "until": "date",
                    "learner_id": "int",
                    "grade_id": "ids",
                    "include_parents": "bool",
                },
                id_fields=("id", "ethnic_group_id", "home_language_id", "tuition_language_id"),
                nested=("parents",),
                window="leavers",
                # Fields after nationality are cut in every copy of d6's page ([gap]): the rest
                # are the sandbox's; unknown fields pass through.
                fields=(
                    *_PERSON[:1],
                    *_PERSON[2:],
                    "ethnic_group_id",
                    "ethnic_group",
                    "home_language_id",
                    "home_language",
                    "tuition_language_id",
                    "tuition_language",
                    "nationality",
                    "id_number",
                    "passport_number",
                    "grade_id",
                    "grade",
                    "register_class_name",
                    "admission_number",
                    "status",
                    "transfer_date",
                ),
            ),
            _v1_row(
                "absentees",
                f"{_ADMIN}/learnerabsentees",
                api_type_id=ADMIN_PLUS,
                filters={"learner_id": "int", "from_date": "date", "to_date": "date"},
                id_fields=("id", "learner_id"),
                window="dates",
                fields=("id", "learner_id", "absent_date", "absent_reason"),
            ),
            _v1_row(
                "discipline",
                f"{_ADMIN}/learnerdiscipline",
                api_type_id=ADMIN_PLUS,
                filters={"learner_id": "int", "from_date": "date", "to_date": "date"},
                id_fields=("id", "learner_id", "staff_member_id"),
                int_fields=("discipline_points",),
                window="dates",
                fields=(
                    "id",
                    "learner_id",
                    "discipline_date",
                    "discipline_category",
                    "discipline_reason",
                    "discipline_points",
                    "discipline_remarks",
                    "staff_member_id",
                ),
            ),
            _v1_row(
                "parents",
                f"{_ADMIN}/parents",
                api_type_id=ADMIN_PLUS,
                filters={"parent_id": "int"},
                id_fields=("id", "ethnic_group_id", "home_language_id", "marital_status_id"),
                decimal_fields=("gross_annual_income",),
                fields=(
                    *_PERSON,
                    "ethnic_group_id",
                    "ethnic_group",
                    "residential_address",
                    "postal_address",
                    "home_language_id",
                    "home_language",
                    "nationality",
                    "family_code",
                    "id_number",
                    "passport_number",
                    "marital_status_id",
                    "marital_status",
                    "occupation_status",
                    "occupation",
                    "employment_sector",
                    "gross_annual_income",
                ),
            ),
            _v1_row(
                "staff_members",
                f"{_ADMIN}/staffmembers",
                api_type_id=ADMIN_PLUS,
                filters={"staff_member_id": "int"},
                # marital_status_id holds text ("Married") in d6's example: never coerced.
                id_fields=("id",),
                text_fields=_CODES | {"marital_status_id"},
                fields=(
                    *_PERSON,
                    "ethnic_group",
                    "residential_address",
                    "postal_address",
                    "home_language",
                    "nationality",
                    "id_number",
                    "passport_number",
                    "marital_status_id",
                    "employment_category",
                    "is_educator",
                    "appointment_type",
                    "paid_by",
                    "sace_number",
                    "register_classes",
                ),
            ),
            _v1_row(
                "learner_subjects",
                f"{_CURR}/learnersubjects",
                api_type_id=CURRICULUM_PLUS,
                filters={"learner_id": "int"},
                id_fields=("learner_id", "subject_id"),
                fields=("learner_id", "first_name", "last_name", "subject_id", "subject_name"),
            ),
            _v1_row(
                "learner_subjects_per_term",
                f"{_CURR}/learnersubjectsperterm",
                api_type_id=CURRICULUM_PLUS,
                filters={"learner_id": "int"},
                id_fields=(
                    "subject_id",
                    "super_subject_id",
                    "grade_id",
                    "term_id",
                    "subject_group_id",
                    "classroom_id",
                    "subject_group_teacher_id",
                ),
                int_fields=("year", "term"),
                nested=("terms",),
                required=("learner_id",),
                per_learner=True,
                # One row per subject x term (the resource's flattened shape).
                fields=(
                    *_SUBJECT_TERM,
                    "super_subject_id",
                    "super_subject_name",
                    "grade_id",
                    "grade",
                    "term_id",
                    "term",
                    "subject_group_id",
                    "subject_group_name",
                    "classroom_id",
                    "classroom_name",
                    "subject_group_teacher_id",
                ),
            ),
            _v1_row(
                "learner_subject_marks",
                f"{_CURR}/learnersubjectmarks",
                api_type_id=CURRICULUM_PLUS,
                filters={"learner_id": "int"},
                id_fields=("subject_id", "grade_id"),
                int_fields=("year", "term"),
                decimal_fields=("mark",),
                nested=("terms",),
                required=("learner_id",),
                per_learner=True,
                fields=(*_SUBJECT_TERM, "grade_id", "grade", "term", "mark"),
            ),
        )
    }
)
ENDPOINTS = MappingProxyType({**ENDPOINTS, **V1_ENDPOINTS})
# The Finance+ and Settings resources (v2), as listed before the v1 rows were added.
V2_RESOURCES = tuple(name for name in ENDPOINTS if name not in V1_ENDPOINTS)

# v1 route of Change Client Integration State, used when the v2 route answers route_not_found.
V1_CLIENT_STATE_PATH = "/v1/settings/clients/{school_id}"

RESOURCE_FIELDS: dict[str, list[str]] = {name: list(e.fields) for name, e in ENDPOINTS.items()}


# coerce_ids changes a record in place and returns the same object.
_Record = TypeVar("_Record")


def coerce_ids(record: _Record, endpoint: Endpoint) -> _Record:
    """Coerce the endpoint's documented id fields to ``int`` in *record* (and embedded records).

    Money and codes are left untouched: only fields named in the catalogue are converted. A
    documented id must be an integer, an integer in disguise (``"1000"``: v1 sends ids as
    strings) or null; anything else (``"abc"``, ``1.5``, ``true``, ``"²"``, 5,000 digits) raises
    ``D6ResponseError`` naming the endpoint and the field. Undocumented ``*_id`` fields of
    embedded records are converted when they are integers in disguise and otherwise passed on.
    """
    if not isinstance(record, dict):
        return record
    ids = endpoint.id_fields
    for key in ids:
        if key in record:
            record[key] = _strict_id(record[key], key, endpoint)
    for key in endpoint.nested:
        inner = record.get(key)
        if isinstance(inner, dict):
            _coerce_plain(inner, ids, endpoint)
        elif isinstance(inner, list):
            for item in inner:
                if isinstance(item, dict):
                    _coerce_plain(item, ids, endpoint)
    return record


def _coerce_plain(record: dict[str, Any], ids: frozenset[str], endpoint: Endpoint) -> None:
    for key, value in record.items():
        if key in ids:
            record[key] = _strict_id(value, key, endpoint)
        elif value.__class__ is str and key.endswith("_id"):
            number = _to_int(value)
            record[key] = value if number is None else number


# Ids are 64-bit at most; a longer digit string is not an id (and int() of thousands of digits
# is slow or refused).
_MAX_ID = 2**63 - 1


def _strict_id(value: Any, key: str, endpoint: Endpoint) -> int | None:
    if value is None:
        return None
    if value.__class__ is int:
        if -_MAX_ID <= value <= _MAX_ID:
            return value
    elif value.__class__ is str:
        if not value.strip():
            # 🔎 whether v1 sends "" for an absent id is unconfirmed; it means "none", as null does.
            return None
        number = _to_int(value)
        if number is not None:
            return number
    from airflow_provider_d6.exceptions import D6ResponseError

    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise D6ResponseError(
        f"d6 sent {key}={shown} ({type(value).__name__}) in a {endpoint.name} record; "
        "expected an integer id"
    )


def _to_int(value: str) -> int | None:
    """Return the int a string of ASCII digits (optionally signed) spells, or None."""
    stripped = value.strip()
    digits = stripped[1:] if stripped[:1] == "-" else stripped
    if 0 < len(digits) <= 19 and digits.isascii() and digits.isdigit():
        number = int(stripped)
        if -_MAX_ID <= number <= _MAX_ID:
            return number
    return None
