"""A school's debtors ledger: monthly invoices and receipts, and the age analysis built from them.

The age analysis is computed from the transactions (the outstanding balance is allocated to the
newest charges first, as debtors ageing does), so the two reports always agree: per account, the
sum of its transactions equals ``balance_total`` equals the sum of its buckets.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal("0.00")
BUCKETS = ("balance_current", "balance_30days", "balance_60days", "balance_90days",
           "balance_120days", "balance_150days")
INVOICE = (5, "Invoice")
RECEIPT = (2, "Receipt")
JOURNAL = (1, "General Journal")
MONTHS_OF_HISTORY = 8


def money(value: Decimal) -> str:
    """Render an amount as d6 does: a decimal string with two places, no currency."""
    return f"{value.quantize(Decimal('0.01'))}"


@dataclass
class Ledger:
    """Transactions of one school, in account then date order, and the derived balances."""

    today: dt.date
    transactions: list[dict[str, Any]]
    balances: dict[int, Decimal]
    current_learners: set[int]
    current_payers: set[int]
    _age_cache: dict[tuple[bool, bool], tuple[list[dict[str, Any]], list[int]]] = field(default_factory=dict)

    def transaction_keys(self) -> list[int]:
        """Return the ascending ids of the transactions (the pagination keys)."""
        return [t["transaction_id"] for t in self.transactions]

    def age_analysis(self, per_learner: bool, per_category: bool, *, learner_id: int | None = None,
                     category_id: int | None = None) -> tuple[list[dict[str, Any]], list[int]]:
        """Return the age-analysis rows for one grouping and their pagination keys (1-based).

        A learner or category filter ages only that learner's or category's transactions.
        """
        if learner_id is not None or category_id is not None:
            picked = [t for t in self.transactions
                      if learner_id in (None, t["_learner_id"]) and category_id in (None, t["category_id"])]
            return self._build_age_analysis(picked, per_learner, per_category)
        grouping = (per_learner, per_category)
        cached = self._age_cache.get(grouping)
        if cached is None:
            cached = self._age_cache[grouping] = self._build_age_analysis(self.transactions, per_learner, per_category)
        return cached

    def _build_age_analysis(self, transactions: list[dict[str, Any]], per_learner: bool,
                            per_category: bool) -> tuple[list[dict[str, Any]], list[int]]:
        groups: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
        for txn in transactions:
            key = (
                txn["accountable_person_id"],
                txn["_learner_id"] if per_learner else 0,
                txn["category_id"] if per_category else 0,
            )
            groups.setdefault(key, []).append(txn)
        rows = []
        for key in sorted(groups):
            txns = groups[key]
            first = txns[0]
            row: dict[str, Any] = {
                "debtor_code": first["debtor_code"],
                "accountable_person_id": first["accountable_person_id"],
                "accountable_person": first["accountable_person"],
            }
            if per_learner:
                row["learner_id"] = first["_learner_id"]
                row["learner"] = first["_learner"]
            if per_category:
                row["category_id"] = first["category_id"]
                row["category"] = first["category"]
            row["date"] = self.today.isoformat()
            buckets, total = age(self.today, [(t["_date"], t["_amount"]) for t in txns])
            row.update({name: money(value) for name, value in zip(BUCKETS, buckets)})
            row["balance_total"] = money(total)
            current = key[1] in self.current_learners if per_learner else key[0] in self.current_payers
            row["_active"] = current or total != 0
            rows.append(row)
        return rows, list(range(1, len(rows) + 1))


def age(today: dt.date, entries: list[tuple[dt.date, Decimal]]) -> tuple[list[Decimal], Decimal]:
    """Split the balance of *entries* into 30-day buckets, allocating it to the newest charges.

    A credit balance stays in the current bucket. The buckets always add up to the total.
    """
    total = sum((amount for _, amount in entries), ZERO)
    buckets = [ZERO] * len(BUCKETS)
    if total <= 0:
        buckets[0] = total
        return buckets, total
    remaining = total
    for date, amount in sorted(entries, key=lambda e: e[0], reverse=True):
        if amount <= 0:
            continue
        take = min(remaining, amount)
        buckets[min((today - date).days // 30, len(BUCKETS) - 1)] += take
        remaining -= take
        if remaining <= 0:
            break
    buckets[-1] += remaining  # only when credits exceed the charges they follow (not in seed data)
    return buckets, total


def build_ledger(rng: random.Random, today: dt.date, first_id: int, persons: list[dict[str, Any]],
                 learners: list[dict[str, Any]], categories: list[dict[str, Any]]) -> Ledger:
    """Generate eight months of invoices and receipts for every learner of one school.

    :param rng: the school's seeded random source.
    :param today: the report date.
    :param first_id: the first transaction id of this school.
    :param persons: accountable persons (families).
    :param learners: learners, each with ``accountable_person_id`` and ``status``.
    :param categories: the school's transaction categories; the first is School Fees.
    """
    person_by_id = {p["accountable_person_id"]: p for p in persons}
    months = []
    cursor = today.replace(day=1)
    for _ in range(MONTHS_OF_HISTORY):
        months.append(cursor)
        cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
    months.reverse()
    fee_base = rng.randint(8, 40) * 100
    extras = categories[1:]
    behaviour = {p["accountable_person_id"]: rng.choices(["good", "late", "defaulter"], [65, 22, 13])[0]
                 for p in persons}
    pay_chance = {"good": 0.97, "late": 0.6, "defaulter": 0.2}
    raw: list[dict[str, Any]] = []
    for learner in learners:
        person = person_by_id[learner["accountable_person_id"]]
        fee = Decimal(fee_base + (300 if learner["grade"] in ("8", "9", "10", "11", "12") else 0))
        lines = [(categories[0], fee)]
        for category in rng.sample(extras, k=min(len(extras), rng.choice([0, 0, 1, 2]))):
            lines.append((category, Decimal(rng.randint(3, 18) * 50)))
        left_after = rng.randint(1, len(months) - 1) if learner["status"] == "Left" else len(months)
        habit = behaviour[person["accountable_person_id"]]
        for index, month in enumerate(months[:left_after]):
            for category, amount in lines:
                raw.append(_txn(person, learner, category, INVOICE, month, amount,
                                f"{category['name']} {month:%B %Y}"))
                paid_on = month + dt.timedelta(days=rng.randint(2, 12))
                if paid_on > today:
                    continue
                draw = rng.random()
                if draw < pay_chance[habit]:
                    raw.append(_txn(person, learner, category, RECEIPT, paid_on, -amount, "Receipt - EFT"))
                elif draw < pay_chance[habit] + 0.1:
                    half = (amount / 2).quantize(Decimal("0.01"))
                    raw.append(_txn(person, learner, category, RECEIPT, paid_on, -half, "Receipt - cash"))
            if index == 0 and rng.random() < 0.03:
                raw.append(_txn(person, learner, categories[0], JOURNAL, month, Decimal("-150.00"),
                                "Sibling discount adjustment"))
    raw.sort(key=lambda t: (t["accountable_person_id"], t["_date"], t["_learner_id"], t["category_id"], t["amount"]))
    balances: dict[int, Decimal] = {}
    for offset, txn in enumerate(raw):
        txn["transaction_id"] = first_id + offset + 1
        pid = txn["accountable_person_id"]
        balances[pid] = balances.get(pid, ZERO) + txn["_amount"]
    # transaction_id first in each record, as d6 lists ids first.
    transactions = [{"transaction_id": t.pop("transaction_id"), **t} for t in raw]
    current_learners = {lr["learner_id"] for lr in learners if lr["status"] == "Current"}
    current_payers = {lr["accountable_person_id"] for lr in learners if lr["status"] == "Current"}
    return Ledger(today, transactions, balances, current_learners, current_payers)


def _txn(person: dict[str, Any], learner: dict[str, Any], category: dict[str, Any],
         txn_type: tuple[int, str], date: dt.date, amount: Decimal, description: str) -> dict[str, Any]:
    return {
        "date": date.isoformat(),
        "debtor_code": person["debtor_code"],
        "accountable_person_id": person["accountable_person_id"],
        "accountable_person": f"{person['first_name']} {person['last_name']}",
        "transaction_type_id": txn_type[0],
        "transaction_type": txn_type[1],
        "category_id": category["id"],
        "category": category["name"],
        "description": description,
        "amount": money(amount),
        "_date": date,
        "_amount": amount,
        "_learner_id": learner["learner_id"],
        "_learner": f"{learner['first_name']} {learner['last_name']}",
    }
