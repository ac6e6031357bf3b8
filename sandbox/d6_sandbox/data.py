"""The seeded district: schools, client integrations and, per school, its Finance+ book.

Everything derives from ``seed``: the district (schools and integrations) at start, and each
school's book (families, learners, ledger, notes) lazily on first use from ``seed`` and the school
id, so a district of 100,000 learners starts in well under a second and two sandboxes with the
same seed serve the same records. All state lives on the sandbox's event loop; the control API
reaches it through HTTP on that loop, so no two threads ever touch it at once.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from d6_sandbox import names
from d6_sandbox.ledger import Ledger, build_ledger
from d6_sandbox.protocol import yes_no

API_TYPES: dict[int, str] = {8: "Admin+ API", 9: "Curriculum+ API"}
FIRST_SCHOOL_ID = 1000
# Per-school id spaces: each entity gets its own block so that an id of one kind is never
# accidentally valid as another kind (a learner id passed as an accountable person id is a 404).
ID_BLOCK = 10_000_000
LEARNER_OFFSET, PERSON_OFFSET, NOTE_OFFSET, PROMISE_OFFSET = (
    1_000_000,
    2_000_000,
    3_000_000,
    4_000_000,
)
MAX_LEARNERS_PER_SCHOOL = 100_000

# Seeded integration layout, by school index k = school_id - 1000 (documented in the README):
#   k % 4 == 0: API 8 activated, API 9 authorised but not activated
#   k % 4 == 1: API 8 authorised but not activated only (Finance+ answers 401 until activated)
#   k % 4 == 2: API 8 and API 9 both activated
#   k % 4 == 3: nothing authorised (the school lists no integration; every call is refused)
LAYOUT: dict[int, dict[int, bool]] = {
    0: {8: True, 9: False},
    1: {8: False},
    2: {8: True, 9: True},
    3: {},
}


@dataclass
class Integration:
    """One school x API type pair that the school has authorised."""

    school_id: int
    api_type_id: int
    activated: bool
    # time.monotonic() of the last activation; seeded activations count as long ago.
    activated_at: float = float("-inf")


@dataclass
class SchoolBook:
    """One school's Finance+ data: families, learners, ledger, notes and promises."""

    persons: list[dict[str, Any]]
    person_by_id: dict[int, dict[str, Any]]
    parents_by_id: dict[int, dict[str, Any]]
    learners: list[dict[str, Any]]
    learner_by_id: dict[int, dict[str, Any]]
    categories: list[dict[str, Any]]
    ledger: Ledger
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)
    promises: dict[int, dict[str, Any]] = field(default_factory=dict)
    learners_by_person: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_note_id: int = 0
    next_promise_id: int = 0
    # Learner lists per filter, with their ids: learners and balances never change at run time,
    # so a walk over many pages filters the school once, not once per page.
    learner_selections: dict[tuple[Any, ...], tuple[list[Any], list[int]]] = field(
        default_factory=dict
    )
    # The school's Admin+/Curriculum+ (v1) view, derived from this book on first use.
    v1: Any = None


class District:
    """The whole seeded d6 world one sandbox serves."""

    def __init__(self, seed: int = 1, schools: int = 25, learners_per_school: int = 400) -> None:
        if not 1 <= schools <= 100_000:
            raise ValueError("schools must be between 1 and 100000")
        if not 0 <= learners_per_school < MAX_LEARNERS_PER_SCHOOL:
            raise ValueError(f"learners_per_school must be below {MAX_LEARNERS_PER_SCHOOL}")
        self.seed = seed
        self.school_count = schools
        self.learners_per_school = learners_per_school
        self.reset()

    def reset(self) -> None:
        """Return to the seeded state."""
        self.today = dt.date.today()
        rng = random.Random(f"district-{self.seed}")
        self.schools: dict[int, dict[str, Any]] = {}
        self.integrations: dict[tuple[int, int], Integration] = {}
        used: set[str] = set()
        for k in range(self.school_count):
            school = _make_school(rng, FIRST_SCHOOL_ID + k, used)
            self.schools[school["school_id"]] = school
            for api_type_id, activated in LAYOUT[k % 4].items():
                self.integrations[(school["school_id"], api_type_id)] = Integration(
                    school["school_id"], api_type_id, activated
                )
        self._books: dict[int, SchoolBook] = {}

    # -- client integrations ----------------------------------------------------------------

    def integration_record(self, integration: Integration) -> dict[str, Any]:
        """Render *integration* as Get Client Integrations does."""
        school = self.schools[integration.school_id]
        return {
            "school_id": integration.school_id,
            "school_name": school["school_name"],
            "admin_email_address": school["admin_email_address"],
            "telephone_calling_code": "27",
            "telephone_number": school["telephone_number"],
            "api_type_id": integration.api_type_id,
            "api_type": API_TYPES[integration.api_type_id],
            "activated_by_integrator": yes_no(integration.activated),
        }

    def sorted_integrations(self) -> list[Integration]:
        """Return every authorised pair in (school_id, api_type_id) order."""
        return [self.integrations[key] for key in sorted(self.integrations)]

    def has_finance_access(self, school_id: int, activation_delay_s: float) -> bool:
        """Say whether Finance+ answers for *school_id* (an activated, settled integration)."""
        now = time.monotonic()
        for api_type_id in API_TYPES:
            integration = self.integrations.get((school_id, api_type_id))
            if (
                integration
                and integration.activated
                and now - integration.activated_at >= activation_delay_s
            ):
                return True
        return False

    def finance_school_ids(self, activation_delay_s: float) -> list[int]:
        """Return the schools Get Schools lists: those Finance+ answers for."""
        return [sid for sid in self.schools if self.has_finance_access(sid, activation_delay_s)]

    # -- per-school books ---------------------------------------------------------------------

    def book(self, school_id: int) -> SchoolBook:
        """Return the Finance+ book of *school_id*, building it on first use."""
        book = self._books.get(school_id)
        if book is None:
            book = self._books[school_id] = _make_book(self, school_id)
        return book

    def note_record(
        self, book: SchoolBook, note: dict[str, Any], with_promises: bool
    ) -> dict[str, Any]:
        """Render a stored note; embed its live promises when asked."""
        record = {k: v for k, v in note.items() if not k.startswith("_")}
        if with_promises:
            record["promise_to_pays"] = [
                promise_record(p) for p in book.promises.values() if p["note_id"] == note["note_id"]
            ]
        return record


def promise_record(promise: dict[str, Any]) -> dict[str, Any]:
    """Render a stored promise to pay."""
    return {k: v for k, v in promise.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# Generation


def _make_school(rng: random.Random, school_id: int, used: set[str]) -> dict[str, Any]:
    province, places = rng.choice(names.PLACES)
    town, suburb, district, district_code = rng.choice(places)
    if school_id == FIRST_SCHOOL_ID:
        name, short, low, high = "d6+ Primary School", "d6+ Primary", "R", "7"
    else:
        while True:
            stem = rng.choice(names.SCHOOL_STEMS)
            kind, low, high = rng.choice(names.SCHOOL_KINDS)
            name = f"{kind} {stem}" if kind in ("Laerskool", "Hoërskool") else f"{stem} {kind}"
            if stem.startswith(("Hoërskool", "Laerskool")):
                name = stem
            if name not in used:
                break
            if len(used) > 250:  # the word lists are exhausted for very large districts
                name = f"{name} {school_id}"
                break
        short = name.replace(" Primary School", " Primary").replace(" High School", " High")
    used.add(name)
    ascii_name = unicodedata.normalize("NFKD", short).encode("ascii", "ignore").decode()
    domain = "".join(ch for ch in ascii_name.lower() if ch.isalnum())[:20] + ".co.za"
    independent = rng.random() < 0.3
    area = rng.choice(["012", "011", "021", "031", "041", "051", "015", "013", "018", "053"])
    street = rng.randint(1, 250)
    return {
        "school_id": school_id,
        "school_name": name,
        "school_short_name": short,
        "ownership_type": "Independent" if independent else "Public",
        "country": "South Africa",
        "province": province,
        "town": town,
        "suburb": suburb,
        "district": district,
        "district_code": district_code,
        "circuit": f"Circuit {rng.randint(1, 12)}",
        "quantile": "" if independent else f"Q{rng.randint(3, 5)}",
        "emis_number": f"{rng.randint(100000000, 999999999)}",
        "telephone_number": "0123334444"
        if school_id == FIRST_SCHOOL_ID
        else f"{area}{rng.randint(1000000, 9999999)}",
        "lowest_grade": low,
        "highest_grade": high,
        "admin_email_address": "support@d6plus.co.za"
        if school_id == FIRST_SCHOOL_ID
        else f"admin@{domain}",
        "debtors_email_address": f"debtors@{domain}",
        "finance_email_address": f"finance@{domain}",
        "physical_address": f"{street} {rng.choice(names.STREETS)} Street, {suburb}, {town}",
        "postal_address": f"PO Box {rng.randint(10, 9999)}, {town}, {rng.randint(1, 9999):04d}",
        "has_after_school_center": yes_no(rng.random() < 0.6),
        "has_hostel": yes_no(rng.random() < 0.25),
        "uses_debit_orders": yes_no(rng.random() < 0.7),
        "uses_cashless": yes_no(rng.random() < 0.4),
    }


_GRADES = ["000", "00", "R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]


def _make_book(district: District, school_id: int) -> SchoolBook:
    rng = random.Random(f"book-{district.seed}-{school_id}")
    school = district.schools[school_id]
    base = (school_id - FIRST_SCHOOL_ID + 1) * ID_BLOCK
    grades = _GRADES[
        _GRADES.index(school["lowest_grade"]) : _GRADES.index(school["highest_grade"]) + 1
    ]
    persons: list[dict[str, Any]] = []
    parents: dict[int, dict[str, Any]] = {}
    learners: list[dict[str, Any]] = []
    next_parent = base + PERSON_OFFSET + 1
    family = 0
    while len(learners) < district.learners_per_school:
        family += 1
        last_name = rng.choice(names.LAST_NAMES)
        debtor_code = str(10000 + family)
        reference = "".join(ch for ch in last_name.upper() if ch.isalpha())[:4] + f"{family:03d}"
        family_parents = []
        for position in range(1 if rng.random() < 0.3 else 2):
            female = rng.random() < (0.6 if position == 0 else 0.4)
            first = rng.choice(names.FIRST_NAMES_F if female else names.FIRST_NAMES_M)
            mailbox = last_name.lower().replace(" ", "")
            parent = {
                "parent_id": next_parent,
                "title": rng.choice(names.TITLES_F if female else names.TITLES_M),
                "first_name": first,
                "last_name": last_name,
                "email_address": f"{first.lower()}.{mailbox}{family}@example.co.za",
                "mobile_number": f"0{rng.choice([6, 7, 8])}{rng.randint(10000000, 99999999)}",
            }
            next_parent += 1
            parents[parent["parent_id"]] = parent
            family_parents.append(parent)
        payer = family_parents[0]
        person = {
            "accountable_person_id": payer["parent_id"],
            "debtor_code": debtor_code,
            "debtor_reference": reference,
            "title": payer["title"],
            "first_name": payer["first_name"],
            "last_name": last_name,
            "email_address": payer["email_address"],
            "mobile_number": payer["mobile_number"],
        }
        persons.append(person)
        for _ in range(
            min(rng.choice([1, 1, 1, 2, 2, 3]), district.learners_per_school - len(learners))
        ):
            female = rng.random() < 0.5
            learners.append(
                {
                    "learner_id": base + LEARNER_OFFSET + len(learners) + 1,
                    "first_name": rng.choice(
                        names.FIRST_NAMES_F if female else names.FIRST_NAMES_M
                    ),
                    "last_name": last_name,
                    "gender": "F" if female else "M",
                    "grade": rng.choice(grades),
                    "debtor_code": debtor_code,
                    "parent1_id": family_parents[0]["parent_id"],
                    "parent2_id": family_parents[1]["parent_id"]
                    if len(family_parents) > 1
                    else None,
                    "accountable_person_id": payer["parent_id"],
                    "status": "Left" if rng.random() < 0.1 else "Current",
                }
            )
    category_ids = sorted(
        rng.sample(range(3, 90), k=min(len(names.CATEGORY_NAMES), rng.randint(4, 7)))
    )
    categories = [
        {"id": cid, "name": cname}
        for cid, cname in zip(category_ids, names.CATEGORY_NAMES, strict=False)
    ]
    person_by_id = {p["accountable_person_id"]: p for p in persons}
    ledger = build_ledger(rng, district.today, base + 5_000_000, persons, learners, categories)
    current_payers = {lr["accountable_person_id"] for lr in learners if lr["status"] == "Current"}
    for person in persons:
        pid = person["accountable_person_id"]
        person["_active"] = pid in current_payers or ledger.balances.get(pid, 0) != 0
    book = SchoolBook(
        persons=persons,
        person_by_id=person_by_id,
        parents_by_id=parents,
        learners=learners,
        learner_by_id={lr["learner_id"]: lr for lr in learners},
        categories=categories,
        ledger=ledger,
        next_note_id=base + NOTE_OFFSET + 1,
        next_promise_id=base + PROMISE_OFFSET + 1,
    )
    for learner in learners:
        book.learners_by_person.setdefault(learner["accountable_person_id"], []).append(learner)
    _seed_notes(rng, district.today, book)
    return book


def _seed_notes(rng: random.Random, today: dt.date, book: SchoolBook) -> None:
    from d6_sandbox.notes import add_note  # local: notes imports this module

    in_arrears = [
        p for p in book.persons if book.ledger.balances.get(p["accountable_person_id"], 0) > 0
    ]
    for person in in_arrears[: max(1, len(in_arrears) // 2)]:
        for _ in range(rng.randint(1, 3)):
            note_type_id = rng.choice([1, 1, 2, 2, 3])
            date = today - dt.timedelta(days=rng.randint(0, 150))
            promises = []
            if note_type_id == 2:
                for n in range(rng.randint(1, 2)):
                    promised = max(date + dt.timedelta(days=14 + 30 * n), dt.date(today.year, 1, 1))
                    promises.append(
                        {
                            "date_promised": promised,
                            "amount_promised": f"{rng.randint(2, 30) * 100}.00",
                        }
                    )
            note = add_note(
                book,
                {
                    "accountable_person_id": person["accountable_person_id"],
                    "date": date,
                    "note_type_id": note_type_id,
                    "communication_type_id": None
                    if note_type_id == 3
                    else rng.choice([1, 2, 3, 6]),
                    "note": rng.choice(names.NOTE_TEXTS),
                },
                promises,
            )
            for promise in book.promises.values():
                if (
                    promise["note_id"] == note["note_id"]
                    and promise["date_promised"] < today.isoformat()
                ):
                    _settle(rng, promise)
            if rng.random() < 0.08:
                note["status"] = "Deleted"


def _settle(rng: random.Random, promise: dict[str, Any]) -> None:
    promised = Decimal(promise["amount_promised"])
    outcome = rng.choice(["Yes", "Yes", "Partial", "No"])
    paid = {"Yes": promised, "Partial": (promised / 2).quantize(Decimal("0.01")), "No": Decimal(0)}[
        outcome
    ]
    promise["amount_paid"] = f"{paid:.2f}"
    promise["promise_completed"] = outcome
