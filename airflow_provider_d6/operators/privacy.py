"""Drop or pseudonymise personal fields of d6 records before they are written anywhere.

d6 records describe children and their families: ID and passport numbers, dates of birth,
contact details, addresses, income, ethnicity. South African schools and their processors are
bound by POPIA, which asks that no more personal information is kept than the purpose needs.
:class:`RecordPrivacy` removes fields (``drop_fields``) or replaces their values with a keyed
pseudonym (``pseudonymise``): ``HMAC-SHA256(key, value)``, so the same value always gives the same
pseudonym under the same key, across runs, resources and schools, and joins on pseudonymised
columns still work, while nobody without the key can recompute or reverse it (not even for
low-entropy values such as dates of birth or phone numbers, which an unkeyed hash would not
protect). Embedded records (parents in learners, the accountable person, ``terms[]``) are
treated the same way, at any depth.

The key is the password of an Airflow connection (any secrets backend works: Vault, AWS Secrets
Manager, …). It is read when the task runs, registered with Airflow's log masker, and kept only
inside the :class:`RecordPrivacy` object: never in a log line, an exception, an XCom or a
rendered template field.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from airflow_provider_d6.exceptions import D6InputError

#: Fields holding personal information that identifies or contacts a person, as d6 names them
#: on Admin+ (learners, parents, staff, school info), Finance+ (accountable persons) and Settings
#: records: ID and passport numbers, contact details, addresses, income and date of birth. Take it
#: as is (``pseudonymise=D6_SENSITIVE_FIELDS``) or extend it (``D6_SENSITIVE_FIELDS + ("…",)``).
D6_SENSITIVE_FIELDS: tuple[str, ...] = (
    # identity documents
    "id_number",
    "passport_number",
    # contact details
    "email_address",
    "admin_email_address",
    "mobile_number",
    "telephone_number",
    # addresses
    "residential_address",
    "postal_address",
    "physical_address",
    # income and date of birth
    "gross_annual_income",
    "date_of_birth",
)

#: People's names, for exports that must not carry them either (``D6_SENSITIVE_FIELDS +
#: D6_NAME_FIELDS``). Not in the default list: most school reporting needs a name somewhere.
D6_NAME_FIELDS: tuple[str, ...] = ("first_name", "last_name", "preferred_name", "maiden_name")

#: "Special personal information" under POPIA section 26 (race or ethnic origin): better dropped
#: than pseudonymised, since a pseudonym of a six-value list is still a category.
D6_SPECIAL_FIELDS: tuple[str, ...] = ("ethnic_group", "ethnic_group_id")

UNKNOWN_FIELD_POLICIES = ("refuse", "warn")
# Pseudonyms are 128 bits of the HMAC in hex: collision-free at any school-district scale, and
# short enough for a warehouse key column. The prefix makes a pseudonymised value recognisable.
PSEUDONYM_PREFIX = "ps_"
_PSEUDONYM_HEX_CHARS = 32
# HMAC-SHA256 keys shorter than this are guessable; d6 data deserves better.
MIN_KEY_LENGTH = 16
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Records nest a few levels (learner -> parents, subject -> terms); deeper means a hostile body.
_MAX_DEPTH = 16


def known_field_names() -> frozenset[str]:
    """Return every field name the provider knows d6 to send, for checking option values."""
    from airflow_provider_d6.hooks._endpoints import ENDPOINTS

    names: set[str] = {*D6_SENSITIVE_FIELDS, *D6_NAME_FIELDS, *D6_SPECIAL_FIELDS}
    for endpoint in ENDPOINTS.values():
        names.update(endpoint.fields)
        names.update(endpoint.id_fields)
        names.update(endpoint.nested)
    return frozenset(names)


def check_field_names(
    value: Any, option: str, *, unknown_fields: str = "refuse"
) -> tuple[tuple[str, ...], list[str]]:
    """Return *value* as a tuple of field names, and the names that d6 is not known to send.

    :param value: ``None``, one name or a collection of names.
    :param option: the option's name (``drop_fields`` or ``pseudonymise``), used in errors.
    :param unknown_fields: ``"refuse"`` raises on a name no d6 record is known to carry (most
        likely a typo, which would leave the real field in the file); ``"warn"`` returns it in
        the second element for the caller to log.
    :raises D6InputError: on anything that is not a field name, or an unknown name when refusing.
    """
    if value is None:
        return (), []
    names = [value] if isinstance(value, str) else value
    if isinstance(names, Mapping) or not isinstance(names, Iterable):
        raise D6InputError(
            f"{_show(value)} is not a list of field names",
            field=option,
            allowed="a list of d6 field names, e.g. D6_SENSITIVE_FIELDS",
        )
    checked: list[str] = []
    for name in names:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise D6InputError(
                f"{_show(name)} is not a field name",
                field=option,
                allowed="lower-case d6 field names such as id_number or email_address",
            )
        if name not in checked:
            checked.append(name)
    known = known_field_names()
    unknown = [name for name in checked if name not in known]
    if unknown and unknown_fields == "refuse":
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise D6InputError(
            f"no d6 record is known to have the field(s) {', '.join(hints)}; a misspelt name "
            "would leave the real field in the file. Pass unknown_fields='warn' to accept names "
            "the provider does not know",
            field=option,
            allowed="field names of d6 records, e.g. those in D6_SENSITIVE_FIELDS",
        )
    return tuple(checked), unknown


class RecordPrivacy:
    """Drop and pseudonymise fields of records, at every depth.

    :param drop_fields: fields removed from every record.
    :param pseudonymise: fields whose values are replaced by :meth:`pseudonym`.
    :param key: the HMAC key (required when *pseudonymise* is not empty).
    """

    __slots__ = ("_drop", "_hmac", "_pseudonymise")

    def __init__(
        self,
        *,
        drop_fields: Collection[str] = (),
        pseudonymise: Collection[str] = (),
        key: str | bytes | None = None,
    ) -> None:
        self._drop = frozenset(drop_fields)
        self._pseudonymise = frozenset(pseudonymise) - self._drop
        if self._pseudonymise:
            secret = key.encode("utf-8") if isinstance(key, str) else key
            if not secret or len(secret) < MIN_KEY_LENGTH:
                raise D6InputError(
                    "the pseudonym key is missing or too short",
                    field="pseudonym_key",
                    allowed=f"a secret of at least {MIN_KEY_LENGTH} characters",
                )
            # Only the keyed hash object is kept (copied per value): not the key itself.
            self._hmac: Any = hmac.new(secret, digestmod=hashlib.sha256)
        else:
            self._hmac = None

    def __repr__(self) -> str:  # never the key
        return (
            f"RecordPrivacy(drop_fields={sorted(self._drop)}, "
            f"pseudonymise={sorted(self._pseudonymise)})"
        )

    def __reduce__(self) -> Any:
        # Pickling would carry the key into wherever the object goes (XCom, a process pool).
        raise TypeError("RecordPrivacy holds a secret key and cannot be serialised")

    @property
    def active(self) -> bool:
        """Return whether any field is dropped or pseudonymised."""
        return bool(self._drop or self._pseudonymise)

    def pseudonym(self, value: Any) -> Any:
        """Return the pseudonym of one value; ``None`` and ``""`` stay as they are.

        Ids are hashed in their decimal form, so ``1001`` and ``"1001"`` (d6 sends both) give
        the same pseudonym and pseudonymised join keys still match across resources.
        """
        if value is None or value == "":
            return value
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, Decimal, str)):
            text = str(value).strip() if isinstance(value, str) else str(value)
        elif isinstance(value, float):
            text = repr(value)
        else:  # a nested structure asked to be pseudonymised as a whole
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        digest = self._hmac.copy()
        digest.update(text.encode("utf-8"))
        return PSEUDONYM_PREFIX + digest.hexdigest()[:_PSEUDONYM_HEX_CHARS]

    def apply(self, record: Any, _depth: int = 0) -> Any:
        """Return *record* with the fields dropped and pseudonymised, embedded records too."""
        if _depth > _MAX_DEPTH:
            raise ValueError("record nested too deeply to check for personal fields")
        if isinstance(record, dict):
            cleaned: dict[str, Any] = {}
            for key, value in record.items():
                if key in self._drop:
                    continue
                if key in self._pseudonymise:
                    if isinstance(value, list) and all(
                        not isinstance(item, (dict, list)) for item in value
                    ):
                        cleaned[key] = [self.pseudonym(item) for item in value]
                    else:
                        cleaned[key] = self.pseudonym(value)
                elif isinstance(value, (dict, list)):
                    cleaned[key] = self.apply(value, _depth + 1)
                else:
                    cleaned[key] = value
            return cleaned
        if isinstance(record, list):
            return [self.apply(item, _depth + 1) for item in record]
        return record

    def iter_apply(self, records: Iterable[Any]) -> Iterator[Any]:
        """Yield each record of *records* cleaned by :meth:`apply`, one at a time."""
        for record in records:
            yield self.apply(record)


def read_pseudonym_key(conn_id: str | None) -> str:
    """Return the password of the Airflow connection *conn_id*, masked in every later log line.

    :raises D6InputError: when there is no such connection id or the connection has no password
        of the minimum length (the password's text never appears).
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    if not conn_id:
        raise D6InputError(
            "pseudonymise needs a key",
            field="pseudonym_key_conn_id",
            allowed="the id of an Airflow connection whose password is the pseudonym key",
        )
    password = BaseHook.get_connection(conn_id).password
    if password:
        mask_secret(password)
    if not password or len(password) < MIN_KEY_LENGTH:
        raise D6InputError(
            f"connection {conn_id!r} has no password of at least {MIN_KEY_LENGTH} characters "
            "to use as the pseudonym key",
            field="pseudonym_key_conn_id",
            allowed="a connection whose password is a long random secret",
        )
    return password


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


__all__ = [
    "D6_NAME_FIELDS",
    "D6_SENSITIVE_FIELDS",
    "D6_SPECIAL_FIELDS",
    "PSEUDONYM_PREFIX",
    "RecordPrivacy",
    "check_field_names",
    "known_field_names",
    "read_pseudonym_key",
]
