"""A school's debtors ledger: monthly invoices and receipts, and the age analysis built from them.

The age analysis is computed from the transactions (the outstanding balance is allocated to the
newest charges first, as debtors ageing does), so the two reports always agree: per account, the
sum of its transactions equals ``balance_total`` equals the sum of its buckets.

Transactions are kept as compact tuples with amounts in integer cents, and become d6 records
(money as ``Decimal`` strings) only when a page is rendered: a school of 500 learners has ~12,000
transactions, and building its book must stay a matter of milliseconds.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

BUCKETS = (
    "balance_current",
    "balance_30days",
    "balance_60days",
    "balance_90days",
    "balance_120days",
    "balance_150days",
)
# kind -> (transaction_type_id, transaction_type, description or None for "<category> <Month YYYY>")
KINDS = {
    0: (5, "Invoice", None),
    1: (2, "Receipt", "Receipt - EFT"),
    2: (2, "Receipt", "Receipt - cash"),
    3: (1, "General Journal", "Sibling discount adjustment"),
}
MONTHS_OF_HISTORY = 8
SELECTION_CACHE_SIZE = 64


# One ledger line as a plain tuple (a NamedTuple costs 5x more to build, and a school has ~12k):
# (accountable person id, date ordinal, learner id, category id, kind, cents); cents are
# positive for a charge and negative for a credit.
Txn = tuple[int, int, int, int, int, int]
PERSON, DAY, LEARNER, CATEGORY, KIND, CENTS = range(6)


def money(cents: int) -> str:
    """Render an amount as d6 does: a decimal string with two places, no currency."""
    return str(Decimal(cents).scaleb(-2))


class Ledger:
    """Transactions of one school, in account then date order, and the derived balances."""

    def __init__(
        self,
        today: dt.date,
        first_id: int,
        txns: list[Txn],
        persons: dict[int, dict[str, Any]],
        learners: dict[int, dict[str, Any]],
        categories: list[dict[str, Any]],
    ) -> None:
        self.today = today
        self.first_id = first_id
        self.txns = txns
        self._persons = persons
        self._learners = learners
        self._category_names = {c["id"]: c["name"] for c in categories}
        self.balances: dict[int, int] = {}
        for txn in txns:
            self.balances[txn[PERSON]] = self.balances.get(txn[PERSON], 0) + txn[CENTS]
        self.current_learners = {i for i, lr in learners.items() if lr["status"] == "Current"}
        self.current_payers = {
            lr["accountable_person_id"] for lr in learners.values() if lr["status"] == "Current"
        }
        self._selections: dict[tuple[Any, ...], tuple[list[int], list[int]]] = {}
        self._age_cache: dict[tuple[bool, bool], tuple[list[dict[str, Any]], list[int]]] = {}

    def selection(
        self, key: tuple[Any, ...], select: Callable[[], list[int]]
    ) -> tuple[list[int], list[int]]:
        """Return the transaction indices a filter picks and their ids, computing them once.

        :param key: the filter's values (hashable).
        :param select: computes the ascending indices for that filter on a cache miss.
        """
        cached = self._selections.get(key)
        if cached is None:
            if len(self._selections) >= SELECTION_CACHE_SIZE:
                self._selections.clear()
            picked = select()
            cached = self._selections[key] = (picked, [self.first_id + i + 1 for i in picked])
        return cached

    def transaction_id(self, index: int) -> int:
        """Return the id of the transaction at *index* (ids follow the ledger order)."""
        return self.first_id + index + 1

    def render(self, index: int, per_learner: bool) -> dict[str, Any]:
        """Return the transaction at *index* as a Financial Transactions Report row."""
        txn = self.txns[index]
        person = self._persons[txn[PERSON]]
        type_id, type_name, description = KINDS[txn[KIND]]
        date = dt.date.fromordinal(txn[DAY])
        category = self._category_names[txn[CATEGORY]]
        record = {
            "transaction_id": self.transaction_id(index),
            "date": date.isoformat(),
            "debtor_code": person["debtor_code"],
            "accountable_person_id": txn[PERSON],
            "accountable_person": f"{person['first_name']} {person['last_name']}",
            "transaction_type_id": type_id,
            "transaction_type": type_name,
            "category_id": txn[CATEGORY],
            "category": category,
            "description": description or f"{category} {date:%B %Y}",
            "amount": money(txn[CENTS]),
        }
        if per_learner:
            learner = self._learners[txn[LEARNER]]
            record["learner_id"] = txn[LEARNER]
            record["learner"] = f"{learner['first_name']} {learner['last_name']}"
        return record

    def age_analysis(
        self,
        per_learner: bool,
        per_category: bool,
        *,
        learner_id: int | None = None,
        category_id: int | None = None,
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Return the age-analysis rows for one grouping and their pagination keys (1-based).

        A learner or category filter ages only that learner's or category's transactions.
        """
        if learner_id is not None or category_id is not None:
            picked = [
                t
                for t in self.txns
                if learner_id in (None, t[LEARNER]) and category_id in (None, t[CATEGORY])
            ]
            return self._build_age_analysis(picked, per_learner, per_category)
        grouping = (per_learner, per_category)
        cached = self._age_cache.get(grouping)
        if cached is None:
            cached = self._age_cache[grouping] = self._build_age_analysis(
                self.txns, per_learner, per_category
            )
        return cached

    def _build_age_analysis(
        self, txns: list[Txn], per_learner: bool, per_category: bool
    ) -> tuple[list[dict[str, Any]], list[int]]:
        groups: dict[tuple[int, int, int], list[Txn]] = {}
        for txn in txns:
            key = (
                txn[PERSON],
                txn[LEARNER] if per_learner else 0,
                txn[CATEGORY] if per_category else 0,
            )
            groups.setdefault(key, []).append(txn)
        today = self.today.toordinal()
        rows = []
        for key in sorted(groups):
            person = self._persons[key[0]]
            row: dict[str, Any] = {
                "debtor_code": person["debtor_code"],
                "accountable_person_id": key[0],
                "accountable_person": f"{person['first_name']} {person['last_name']}",
            }
            if per_learner:
                learner = self._learners[key[1]]
                row["learner_id"] = key[1]
                row["learner"] = f"{learner['first_name']} {learner['last_name']}"
            if per_category:
                row["category_id"] = key[2]
                row["category"] = self._category_names[key[2]]
            row["date"] = self.today.isoformat()
            buckets, total = age(today, [(t[DAY], t[CENTS]) for t in groups[key]])
            row.update({name: money(value) for name, value in zip(BUCKETS, buckets, strict=False)})
            row["balance_total"] = money(total)
            current = (
                key[1] in self.current_learners if per_learner else key[0] in self.current_payers
            )
            row["_active"] = current or total != 0
            rows.append(row)
        return rows, list(range(1, len(rows) + 1))


def age(today: int, entries: list[tuple[int, int]]) -> tuple[list[int], int]:
    """Split the balance of *entries* (day ordinal, cents) into 30-day buckets, newest first.

    A credit balance stays in the current bucket. The buckets always add up to the total.
    """
    total = sum(cents for _, cents in entries)
    buckets = [0] * len(BUCKETS)
    if total <= 0:
        buckets[0] = total
        return buckets, total
    remaining = total
    for day, cents in sorted(entries, reverse=True):
        if cents <= 0:
            continue
        take = min(remaining, cents)
        buckets[min((today - day) // 30, len(BUCKETS) - 1)] += take
        remaining -= take
        if remaining <= 0:
            break
    return buckets, total


def build_ledger(
    rng: random.Random,
    today: dt.date,
    first_id: int,
    persons: list[dict[str, Any]],
    learners: list[dict[str, Any]],
    categories: list[dict[str, Any]],
) -> Ledger:
    """Generate eight months of invoices and receipts for every learner of one school.

    :param rng: the school's seeded random source.
    :param today: the report date.
    :param first_id: transaction ids of this school start after this number.
    :param persons: accountable persons (families).
    :param learners: learners, each with ``accountable_person_id`` and ``status``.
    :param categories: the school's transaction categories; the first is School Fees.
    """
    months = []
    cursor = today.replace(day=1)
    for _ in range(MONTHS_OF_HISTORY):
        months.append(cursor.toordinal())
        cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
    months.reverse()
    last_day = today.toordinal()
    fee_base = rng.randint(8, 40) * 10_000
    fees_id = categories[0]["id"]
    extras = [c["id"] for c in categories[1:]]
    # Each family has a payment habit and a usual payment day; one draw per invoice decides.
    habit = {
        p["accountable_person_id"]: (
            rng.choices((0.97, 0.6, 0.2), (65, 22, 13))[0],
            rng.randint(2, 12),
        )
        for p in persons
    }
    senior = {"8", "9", "10", "11", "12"}
    txns: list[Txn] = []
    append = txns.append
    draw = rng.random
    for learner in learners:
        pid = learner["accountable_person_id"]
        learner_id = learner["learner_id"]
        pay_chance, pay_day = habit[pid]
        lines = [(fees_id, fee_base + (30_000 if learner["grade"] in senior else 0))]
        for category_id in rng.sample(extras, k=min(len(extras), rng.choice((0, 0, 1, 2)))):
            lines.append((category_id, rng.randint(3, 18) * 5_000))
        left = learner["status"] == "Left"
        stop = rng.randint(1, len(months) - 1) if left else len(months)
        owing = dict.fromkeys((category_id for category_id, _ in lines), 0)
        for month in months[:stop]:
            paid_on = month + pay_day
            for category_id, cents in lines:
                append((pid, month, learner_id, category_id, 0, cents))
                owing[category_id] += cents
                if paid_on > last_day:
                    continue
                roll = draw()
                if roll < pay_chance:
                    append((pid, paid_on, learner_id, category_id, 1, -cents))
                    owing[category_id] -= cents
                elif roll < pay_chance + 0.1:
                    append((pid, paid_on, learner_id, category_id, 2, -(cents // 2)))
                    owing[category_id] -= cents // 2
        if left and draw() < 0.8:
            # Most families settle when a learner leaves: accounts with no other learner close.
            settle_on = min(months[stop - 1] + 20, last_day)
            for category_id, cents in owing.items():
                if cents > 0:
                    append((pid, settle_on, learner_id, category_id, 1, -cents))
        if draw() < 0.03:
            append((pid, months[0], learner_id, fees_id, 3, -15_000))
    txns.sort()
    return Ledger(
        today,
        first_id,
        txns,
        {p["accountable_person_id"]: p for p in persons},
        {lr["learner_id"]: lr for lr in learners},
        categories,
    )
