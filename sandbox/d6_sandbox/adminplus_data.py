"""The Admin+ and Curriculum+ (v1) view of one school, derived from its Finance+ book.

The same learners (ids, names, gender, grade), the same parents and accountable persons (ids,
titles, names, contact details) as Finance+ serves; everything Finance+ does not know (dates of
birth, ID numbers, languages, staff, absences, discipline, subjects, marks) is drawn from a
seeded generator of its own, so adding this view changes no Finance+ record. Absences and
discipline are a pure function of (learner, day): any window is computed on demand, identical
calls return identical rows and ids, and nothing grows with the range asked for.

Everything is synthetic: names come from the ``names`` word lists, numbers from the generator.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from d6_sandbox import names
from d6_sandbox.data import FIRST_SCHOOL_ID, ID_BLOCK, SchoolBook

STAFF_OFFSET = 6_000_000
WAITLIST_SHARE = 0.03
ETHNIC_GROUPS = [
    (1, "African/Black"),
    (2, "Coloured"),
    (3, "Indian"),
    (4, "White"),
    (5, "Other"),
    (6, "Asian"),
]
# The Genders and Language(s) pages are not in d6's stored docs ([gap]): the sandbox answers
# ``[{"id", "name"}]`` like the other lookups (records themselves carry "M"/"F").
GENDERS = [(1, "Male"), (2, "Female")]
LANGUAGES = [
    (1, "Afrikaans"),
    (2, "English"),
    (3, "isiZulu"),
    (4, "isiXhosa"),
    (5, "Sesotho"),
    (6, "Setswana"),
    (7, "Sepedi"),
    (8, "Xitsonga"),
    (9, "Tshivenda"),
    (10, "siSwati"),
    (11, "isiNdebele"),
]
# d6's documented list has no id 5.
MARITAL_STATUSES = [
    (1, "Divorced"),
    (2, "Married"),
    (3, "Single"),
    (4, "Widowed"),
    (6, "Separated"),
    (7, "Common law marriage"),
]
# Grade ids follow d6's default list (id = grade + 2: Grade RR 1, Grade R 2, Grade 1 3, ...);
# Grade 000 has a school-customised id, as d6 lets schools add grades.
GRADE_IDS = {"000": 15, "00": 1, "R": 2, **{str(n): n + 2 for n in range(1, 13)}}
GRADE_NAMES = {"000": "Grade 000", "00": "Grade RR"}
ABSENT_REASONS = [
    "Illness",
    "Illness",
    "Illness",
    "Family responsibility",
    "Medical appointment",
    "Late arrival",
    "Funeral",
    "Unknown",
]
DISCIPLINE = [
    ("Level 1", "Appearance : Hair / Nails", -1),
    ("Level 1", "Homework not done", -1),
    ("Level 1", "Late for class", -1),
    ("Level 2", "Disrupting class 2.05", -2),
    ("Level 3", "Bullying 3.01", -5),
    ("General", "Handed in lost goods/money", 3),
    ("General", "Helpful to staff", 2),
    ("Merit", "Excellent effort in class", 1),
]
REMARKS = ["Parents informed.", "Second offence this term.", "Well done!"]
EMPLOYMENT = [
    ("Educator", True),
    ("Educator", True),
    ("Educator", True),
    ("Head Of Department", True),
    ("Deputy Principal", True),
    ("Finance", False),
    ("Administration", False),
    ("Grounds", False),
]
OCCUPATIONS = [
    ("Full Time Employed", "Salesman", "Selling"),
    ("Full Time Employed", "Nurse", "Health"),
    ("Full Time Employed", "Teacher", "Education"),
    ("Full Time Employed", "Accountant", "Finance"),
    ("Self Employed", "Electrician", "Construction"),
    ("Part Time Employed", "Cashier", "Retail"),
    ("Unemployed", "", "Other"),
]
# Subjects by phase: (super_subject_id, name); "HL"/"FAL" become the school's languages.
PHASES = {
    "foundation": [(1, "HL"), (2, "FAL"), (3, "Mathematics"), (4, "Life Skills")],
    "intermediate": [
        (1, "HL"),
        (2, "FAL"),
        (3, "Mathematics"),
        (5, "Natural Sciences and Technology"),
        (6, "Social Sciences"),
        (4, "Life Skills"),
    ],
    "senior": [
        (1, "HL"),
        (2, "FAL"),
        (3, "Mathematics"),
        (7, "Natural Sciences"),
        (6, "Social Sciences"),
        (8, "Technology"),
        (9, "Economic and Management Sciences"),
        (10, "Life Orientation"),
        (11, "Creative Arts"),
        (2334, "Coding and Robotics"),
    ],
    "fet": [(1, "HL"), (2, "FAL"), (10, "Life Orientation")],
}
FET_CHOICES = [
    (3, "Mathematics"),
    (12, "Mathematical Literacy"),
    (13, "Physical Sciences"),
    (14, "Life Sciences"),
    (15, "Accounting"),
    (16, "Business Studies"),
    (17, "Geography"),
    (18, "History"),
    (19, "Computer Applications Technology"),
]


def _grade_number(grade: str) -> int:
    special = {"000": -2, "00": -1, "R": 0}
    return special[grade] if grade in special else int(grade)


def _phase(grade: str) -> str:
    number = _grade_number(grade)
    if number <= 3:
        return "foundation"
    if number <= 6:
        return "intermediate"
    return "senior" if number <= 9 else "fet"


def _mix(*values: int) -> int:
    """A fast, stable 32-bit hash of integers (no ``hash()``: that is salted per process)."""
    h = 2166136261
    for value in values:
        h = ((h ^ (value & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
        h ^= h >> 15
    return h


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def id_number(rng: random.Random, born: dt.date, female: bool) -> str:
    """A synthetic 13-digit South African ID number (date, gender, citizen, checksum).

    Learners born in 2000-2009 start with ``0``: a code, never a number.
    """
    sequence = rng.randint(0, 4999) if female else rng.randint(5000, 9999)
    stem = f"{born:%y%m%d}{sequence:04d}08"
    return stem + _luhn_digit(stem)


def _address(rng: random.Random, school: dict[str, Any]) -> str:
    # d6 sends multi-line addresses with \r\n between the lines.
    street = f"{rng.randint(1, 300)} {rng.choice(names.STREETS)} Street"
    return "\r\n".join([street, school["suburb"], school["town"], f"{rng.randint(1, 9999):04d}"])


def _birthday(rng: random.Random, year: int) -> dt.date:
    return dt.date(year, 1, 1) + dt.timedelta(days=rng.randint(0, 364))


@dataclass
class AdminSchool:
    """One school's v1 records; learners and parents share ids with its Finance+ book."""

    school_id: int
    info: dict[str, Any]
    grades: list[dict[str, str]]
    learners: list[dict[str, Any]]
    learner_by_id: dict[int, dict[str, Any]]
    parents: dict[int, dict[str, Any]]
    staff: list[dict[str, Any]]
    educators: list[int]
    tuition_language_ids: list[int]
    year: int
    term_ids: list[int]
    seed: int
    subjects_cache: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def build(seed: int, today: dt.date, school: dict[str, Any], book: SchoolBook) -> AdminSchool:
    """Derive the v1 view of *school* from its Finance+ *book*."""
    school_id = school["school_id"]
    rng = random.Random(f"adminplus-{seed}-{school_id}")
    base = (school_id - FIRST_SCHOOL_ID + 1) * ID_BLOCK
    afrikaans = school["school_name"].startswith(("Laerskool", "Hoërskool"))
    medium = "Afrikaans" if afrikaans else rng.choice(["English", "English", "Dual medium"])
    tuition = {"Afrikaans": [1], "English": [2], "Dual medium": [1, 2]}[medium]
    info = {
        "school_name": school["school_name"],
        "admin_email_address": school["admin_email_address"],
        "telephone_calling_code": "27",
        "telephone_number": school["telephone_number"],
        "website": "https://" + school["admin_email_address"].split("@")[1] + "/",
        "physical_address": school["physical_address"].replace(", ", "\r\n"),
        "quantile": school["quantile"].lstrip("Q"),  # "" for independent schools
        "medium": medium,
        "emis_number": school["emis_number"],
        "country": school["country"],
        "province": school["province"],
        "tuition_languages": [dict(LANGUAGES)[i] for i in tuition],
    }
    grade_list = [g for g in GRADE_IDS if _grade_number(school["lowest_grade"]) <= _grade_number(g)]
    grade_list = [
        g for g in grade_list if _grade_number(g) <= _grade_number(school["highest_grade"])
    ]
    grade_list.sort(key=_grade_number)
    word = "Graad" if afrikaans else "Grade"
    grades = [
        {"id": str(GRADE_IDS[g]), "name": GRADE_NAMES.get(g, f"{word} {g}").replace("Grade", word)}
        for g in grade_list
    ]

    # Families: one language, ethnic group and address per family (debtor code).
    families: dict[str, dict[str, Any]] = {}

    def family(code: str) -> dict[str, Any]:
        fam = families.get(code)
        if fam is None:
            ethnic = rng.choice(ETHNIC_GROUPS[:4] + ETHNIC_GROUPS[:2] + ETHNIC_GROUPS[5:])
            home = rng.choice([1, 2, 2, 3, 4, 5, 6, 7]) if not afrikaans else rng.choice([1, 1, 2])
            fam = families[code] = {
                "ethnic": ethnic,
                "home": home,
                "tuition": home if home in tuition else tuition[0],
                "address": _address(rng, school),
                "married": rng.random() < 0.6,
            }
        return fam

    year = today.year
    parents: dict[int, dict[str, Any]] = {}
    learners: list[dict[str, Any]] = []
    for position, lr in enumerate(book.learners):
        fam = family(lr["debtor_code"])
        grade = lr["grade"]
        female = lr["gender"] == "F"
        born = _birthday(rng, year - 6 - _grade_number(grade))
        older = _grade_number(grade) >= 8
        status = lr["status"]
        transfer = ""
        if status == "Left":
            transfer = (today - dt.timedelta(days=rng.randint(1, 540))).isoformat()
        learners.append(
            {
                "id": str(lr["learner_id"]),
                "first_name": lr["first_name"],
                "last_name": lr["last_name"],
                "mobile_calling_code": "27" if older else "",
                "mobile_number": f"0{rng.choice([6, 7, 8])}{rng.randint(10000000, 99999999)}"
                if older
                else "",
                "email_address": "",
                "date_of_birth": born.isoformat(),
                "gender": lr["gender"],
                "ethnic_group_id": str(fam["ethnic"][0]),
                "ethnic_group": fam["ethnic"][1],
                "home_language_id": str(fam["home"]),
                "home_language": dict(LANGUAGES)[fam["home"]],
                "tuition_language_id": str(fam["tuition"]),
                "tuition_language": dict(LANGUAGES)[fam["tuition"]],
                "nationality": "South Africa",
                "id_number": id_number(rng, born, female),
                "passport_number": "",
                "grade_id": str(GRADE_IDS[grade]),
                "grade": grade,
                "register_class_name": f"{grade}{'ABC'[position % 3]}",
                "admission_number": f"{year - rng.randint(0, 6)}{position + 1:04d}",
                "status": status,
                "transfer_date": transfer,
                "_parents": [p for p in (lr["parent1_id"], lr["parent2_id"]) if p is not None],
            }
        )
        for order, parent_id in enumerate(learners[-1]["_parents"]):
            if parent_id not in parents:
                parents[parent_id] = _parent(
                    rng, book.parents_by_id[parent_id], lr["debtor_code"], fam, order, year
                )
    # A few waitlisted learners: not enrolled, so Finance+ has no account for them.
    next_id = base + 1_000_000 + len(book.learners) + 1
    for n in range(int(len(book.learners) * WAITLIST_SHARE)):
        female = rng.random() < 0.5
        grade = rng.choice(grade_list)
        born = _birthday(rng, year - 6 - _grade_number(grade))
        home = rng.choice(tuition)
        learners.append(
            {
                "id": str(next_id + n),
                "first_name": rng.choice(names.FIRST_NAMES_F if female else names.FIRST_NAMES_M),
                "last_name": rng.choice(names.LAST_NAMES),
                "mobile_calling_code": "",
                "mobile_number": "",
                "email_address": "",
                "date_of_birth": born.isoformat(),
                "gender": "F" if female else "M",
                "ethnic_group_id": "5",
                "ethnic_group": "Other",
                "home_language_id": str(home),
                "home_language": dict(LANGUAGES)[home],
                "tuition_language_id": str(home),
                "tuition_language": dict(LANGUAGES)[home],
                "nationality": "South Africa",
                "id_number": id_number(rng, born, female),
                "passport_number": "",
                "grade_id": str(GRADE_IDS[grade]),
                "grade": grade,
                "register_class_name": "",
                "admission_number": "",
                "status": "Waitlist",
                "transfer_date": "",
                "_parents": [],
            }
        )
    staff, educators = _staff(rng, base, school, grade_list, max(5, len(book.learners) // 25), year)
    first_term = 4 * (year - 2000) + 1
    return AdminSchool(
        school_id=school_id,
        info=info,
        grades=grades,
        learners=learners,
        learner_by_id={int(lr["id"]): lr for lr in learners},
        parents=parents,
        staff=staff,
        educators=educators,
        tuition_language_ids=tuition,
        year=year,
        term_ids=[first_term + t for t in range(4)],
        seed=seed,
    )


def _parent(
    rng: random.Random,
    parent: dict[str, Any],
    family_code: str,
    fam: dict[str, Any],
    order: int,
    year: int,
) -> dict[str, Any]:
    title = parent["title"]
    female = title in ("Mrs", "Ms") or parent["first_name"] in names.FIRST_NAMES_F
    born = _birthday(rng, year - rng.randint(28, 58))
    status, occupation, sector = rng.choice(OCCUPATIONS)
    income = "0.00" if status == "Unemployed" else f"{rng.randint(36, 1800) * 1000}.00"
    marital = (2, "Married") if fam["married"] else rng.choice(MARITAL_STATUSES)
    passport = "" if rng.random() < 0.95 else f"M{rng.randint(10000000, 99999999)}"
    return {
        "id": str(parent["parent_id"]),
        "title": title,
        "first_name": parent["first_name"],
        "last_name": parent["last_name"],
        "mobile_calling_code": "27",
        "mobile_number": parent["mobile_number"],
        "email_address": parent["email_address"],
        "date_of_birth": born.isoformat(),
        "gender": "F" if female else "M",
        "ethnic_group_id": str(fam["ethnic"][0]),
        "ethnic_group": fam["ethnic"][1],
        "residential_address": fam["address"],
        "postal_address": fam["address"] if rng.random() < 0.7 else _po_box(rng),
        "home_language_id": str(fam["home"]),
        "home_language": dict(LANGUAGES)[fam["home"]],
        "nationality": "South Africa",
        "family_code": family_code,
        "id_number": "" if passport else id_number(rng, born, female),
        "passport_number": passport,
        "marital_status_id": str(marital[0]),
        "marital_status": marital[1],
        "occupation_status": status,
        "occupation": occupation,
        "employment_sector": sector,
        "gross_annual_income": income,
    }


def _po_box(rng: random.Random) -> str:
    return f"PO Box {rng.randint(10, 9999)}\r\n{rng.choice(names.PLACES)[1][0][0]}\r\n{rng.randint(1, 9999):04d}"


def _staff(
    rng: random.Random,
    base: int,
    school: dict[str, Any],
    grade_list: list[str],
    count: int,
    year: int,
) -> tuple[list[dict[str, Any]], list[int]]:
    staff: list[dict[str, Any]] = []
    educators: list[int] = []
    for n in range(count):
        female = rng.random() < 0.65
        category, educator = EMPLOYMENT[n % len(EMPLOYMENT)] if n < 4 else rng.choice(EMPLOYMENT)
        if n == 0:
            category, educator = "Principal", True
        staff_id = base + STAFF_OFFSET + n + 1
        born = _birthday(rng, year - rng.randint(24, 63))
        classes = ""
        if educator and category == "Educator":
            picked = sorted(
                {f"{rng.choice(grade_list)}{rng.choice('ABC')}" for _ in range(rng.randint(1, 3))}
            )
            classes = ",".join(picked)
        if educator:
            educators.append(staff_id)
        staff.append(
            {
                "id": str(staff_id),
                "title": rng.choice(names.TITLES_F if female else names.TITLES_M),
                "first_name": rng.choice(names.FIRST_NAMES_F if female else names.FIRST_NAMES_M),
                "last_name": rng.choice(names.LAST_NAMES),
                "mobile_calling_code": "27",
                "mobile_number": f"0{rng.choice([6, 7, 8])}{rng.randint(10000000, 99999999)}",
                "email_address": f"staff{n + 1}@{school['admin_email_address'].split('@')[1]}",
                "date_of_birth": born.isoformat(),
                "gender": "F" if female else "M",
                # Staff records carry the group and language as text only (no ids).
                "ethnic_group": rng.choice(ETHNIC_GROUPS[:4])[1],
                "residential_address": _address(rng, school),
                "postal_address": _po_box(rng),
                "home_language": rng.choice(LANGUAGES[:4])[1],
                "nationality": "South Africa",
                "id_number": id_number(rng, born, female),
                "passport_number": "",
                # d6's quirk: the "id" field holds the status text.
                "marital_status_id": rng.choice(MARITAL_STATUSES)[1],
                "employment_category": category,
                "is_educator": "Yes" if educator else "No",
                "appointment_type": rng.choice(["Permanent", "Permanent", "Temporary"]),
                "paid_by": rng.choice(["Department of Education", "Governing Body"]),
                # SACE numbers are codes: some start with 0.
                "sace_number": f"{rng.randint(0, 9999999):07d}" if educator else "",
                "register_classes": classes,
            }
        )
    return staff, educators


# -- records computed on demand -------------------------------------------------------------------


def _attending(learner: dict[str, Any], day: dt.date) -> bool:
    if learner["status"] == "Waitlist":
        return False
    return not learner["transfer_date"] or day.isoformat() < learner["transfer_date"]


def absentees(
    view: AdminSchool, start: dt.date, end: dt.date, learner_id: int | None
) -> list[dict[str, Any]]:
    """One row per learner per school day absent in [start, end] (inclusive), in date order."""
    rows: list[dict[str, Any]] = []
    selected = _selected(view, learner_id)
    day = start
    while day <= end:
        if day.weekday() < 5:
            ordinal = day.toordinal()
            for learner in selected:
                lid = int(learner["id"])
                h = _mix(view.seed, lid, ordinal, 1)
                if h % 1000 < 30 and _attending(learner, day):
                    rows.append(
                        {
                            "id": str((ordinal - 730000) * 100_000 + lid % 100_000),
                            "learner_id": learner["id"],
                            "absent_date": day.isoformat(),
                            "absent_reason": ABSENT_REASONS[(h >> 10) % len(ABSENT_REASONS)],
                        }
                    )
        day += dt.timedelta(days=1)
    return rows


def discipline(
    view: AdminSchool, start: dt.date, end: dt.date, learner_id: int | None
) -> list[dict[str, Any]]:
    """Discipline entries (negative points) and recognitions (positive) in [start, end]."""
    rows: list[dict[str, Any]] = []
    selected = _selected(view, learner_id)
    day = start
    while day <= end:
        if day.weekday() < 5:
            ordinal = day.toordinal()
            for learner in selected:
                lid = int(learner["id"])
                h = _mix(view.seed, lid, ordinal, 2)
                if h % 1000 < 12 and _attending(learner, day):
                    category, reason, points = DISCIPLINE[(h >> 10) % len(DISCIPLINE)]
                    remark = REMARKS[(h >> 14) % len(REMARKS)] if (h >> 20) % 4 == 0 else ""
                    rows.append(
                        {
                            "id": str((ordinal - 730000) * 100_000 + lid % 100_000),
                            "learner_id": learner["id"],
                            "discipline_date": day.isoformat(),
                            "discipline_category": category,
                            "discipline_reason": reason,
                            "discipline_points": str(points),
                            "discipline_remarks": remark,
                            "staff_member_id": str(view.educators[(h >> 4) % len(view.educators)]),
                        }
                    )
        day += dt.timedelta(days=1)
    return rows


def _selected(view: AdminSchool, learner_id: int | None) -> list[dict[str, Any]]:
    if learner_id is None:
        return view.learners
    learner = view.learner_by_id.get(learner_id)
    return [learner] if learner else []


def current_term(today: dt.date) -> int:
    """The school term *today* falls in (1 to 4)."""
    return min(4, (today.month - 1) // 3 + 1)


def subjects(view: AdminSchool, learner: dict[str, Any]) -> list[dict[str, Any]]:
    """The current-year subjects of an enrolled learner (none for a leaver or waitlisted one)."""
    lid = int(learner["id"])
    cached = view.subjects_cache.get(lid)
    if cached is not None:
        return cached
    if learner["status"] != "Current":
        return []
    grade = learner["grade"]
    phase = _phase(grade)
    chosen = list(PHASES[phase])
    if phase == "fet":
        h = _mix(view.seed, lid, 3)
        picks = [FET_CHOICES[0] if h % 3 else FET_CHOICES[1]]
        rest = FET_CHOICES[2:]
        for k in range(3):
            picks.append(rest[(h >> (4 + 3 * k)) % len(rest)])
            rest = [s for s in rest if s != picks[-1]]
        chosen += picks
    home = int(learner["tuition_language_id"])
    other = 2 if home == 1 else 1
    lang = dict(LANGUAGES)
    number = max(_grade_number(grade), 0)
    grade_id = GRADE_IDS[grade]
    label = grade.zfill(2) if grade.isdigit() else grade
    out = []
    for super_id, name in chosen:
        if name == "HL":
            super_id, name = (20 + home, f"{lang[home]} Home Language")
        elif name == "FAL":
            super_id, name = (30 + other, f"{lang[other]} First Additional Language")
        out.append(
            {
                "super_subject_id": super_id,
                "super_subject_name": name,
                "subject_id": super_id * 100 + number,
                "subject_name": f"{name} (Gr {label})",
                "grade_id": grade_id,
                "grade": grade,
            }
        )
    view.subjects_cache[lid] = out
    return out


def per_term(view: AdminSchool, learner: dict[str, Any]) -> list[dict[str, Any]]:
    """Subjects Per Term rows: per subject, its group, class and teacher in each term."""
    lid = int(learner["id"])
    rows = []
    for subject in subjects(view, learner):
        terms = []
        for t, term_id in enumerate(view.term_ids, start=1):
            # A learner may change group (and class) between the first and second half-year.
            half = 0 if t <= 2 else 1
            h = _mix(view.seed, lid, subject["subject_id"], half)
            group = 1 + h % 3
            teacher = view.educators[_mix(subject["subject_id"], group, half) % len(view.educators)]
            terms.append(
                {
                    "term_id": term_id,  # an int, unlike every other id here (as in d6's docs)
                    "term": str(t),
                    "subject_group_id": str(subject["subject_id"] * 10 + group),
                    "subject_group_name": f"{subject['super_subject_name']} Group {group}",
                    "classroom_id": str(group),
                    "classroom_name": f"{learner['grade']}{'ABC'[group - 1]}",
                    "subject_group_teacher_id": str(teacher),
                }
            )
        rows.append(
            {
                "year": str(view.year),
                "subject_id": str(subject["subject_id"]),
                "subject_name": subject["subject_name"],
                "super_subject_id": str(subject["super_subject_id"]),
                "super_subject_name": subject["super_subject_name"],
                "grade_id": str(subject["grade_id"]),
                "grade": subject["grade"],
                "terms": terms,
            }
        )
    return rows


def marks(view: AdminSchool, learner: dict[str, Any], today: dt.date) -> list[dict[str, Any]]:
    """Subject Marks rows: per subject, a 2-dp mark for each term so far (no learner_id)."""
    lid = int(learner["id"])
    last = current_term(today)
    rows = []
    for subject in subjects(view, learner):
        terms = []
        for t in range(1, last + 1):
            h = _mix(view.seed, lid, subject["subject_id"], t, 7)
            terms.append({"term": str(t), "mark": f"{35 + (h % 6400) / 100:.2f}"})
        rows.append(
            {
                "year": str(view.year),
                "subject_id": str(subject["subject_id"]),
                "subject_name": subject["subject_name"],
                "grade_id": str(subject["grade_id"]),
                "grade": subject["grade"],
                "terms": terms,
            }
        )
    return rows
