"""Client-integration methods of D6Hook: list client integrations and change their state.

Change Client Integration State is where d6's API documentation contradicts itself: the
documented v2 route may answer ``route_not_found``, the v1 route answers 204 with no body, and
"already in that state" is a 400. This module turns all of that into one idempotent call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_d6.exceptions import D6NotFoundError, D6ResponseError, D6ValidationError
from airflow_provider_d6.hooks._endpoints import V1_CLIENT_STATE_PATH
from airflow_provider_d6.hooks._parse import already_in_state
from airflow_provider_d6.hooks._transport import MixinBase
from airflow_provider_d6.hooks._validate import check_bool
from airflow_provider_d6.hooks.client_integration_state import (
    CLIENT_INTEGRATIONS,
    client_integration_record,
    is_pair,
    list_params,
    pair,
)


class ClientIntegrationMethods(MixinBase):
    """Typed client-integration methods; mixed into D6Hook, which provides the transport."""

    # Set once d6 answered route_not_found to the v2 Change Client Integration State route
    # (activation_route "auto"): from then on this hook uses the v1 route directly.
    _v2_state_route_missing = False

    def iter_client_integrations(
        self, school_id: int | None = None, api_type_id: int | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield the client integrations (school x API type pairs that authorised us).

        :param school_id: only this school
        :param api_type_id: only this API type (8 Admin+, 9 Curriculum+)
        """
        params = list_params(school_id, api_type_id, **filters)
        return self._iter_endpoint(CLIENT_INTEGRATIONS, None, params)

    def get_client_integrations(
        self, school_id: int | None = None, api_type_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Return the client integrations as a list (see ``iter_client_integrations``)."""
        return list(self.iter_client_integrations(school_id=school_id, api_type_id=api_type_id))

    def get_client_integration(self, school_id: int, api_type_id: int) -> dict[str, Any] | None:
        """Return the client integration of one school and API type, or None if not authorised."""
        wanted = pair(school_id, api_type_id)
        records = self.iter_client_integrations(**wanted)
        return next((record for record in records if is_pair(record, wanted)), None)

    def set_client_integration_state(
        self, school_id: int, api_type_id: int, state: bool
    ) -> dict[str, Any]:
        """Activate (True) or deactivate (False) a client integration and return its record.

        Idempotent: "already in that state" is success. Setting a state is also safe to retry,
        so the PATCH goes through the normal retry policy. Raises ``D6NotAuthorisedError`` when
        the school has not authorised this integrator.

        :param school_id: the school
        :param api_type_id: the API type
        :param state: True to activate, False to deactivate
        """
        wanted = pair(school_id, api_type_id)
        school_id, api_type_id = wanted["school_id"], wanted["api_type_id"]
        state = check_bool(state, "state")
        route = self.settings.activation_route
        if route != "v1" and not self._v2_state_route_missing:
            body = {"school_id": school_id, "api_type_id": api_type_id, "state": state}
            try:
                return self._patch_state(CLIENT_INTEGRATIONS.path, body, school_id, api_type_id)
            except D6NotFoundError as err:
                if not (err.route_not_found and route == "auto"):
                    raise
                self.log.warning(
                    "d6 has no v2 Change Client Integration State route; using v1 from now on"
                )
                self._v2_state_route_missing = True  # one bool: no lock needed
        # v1 documents the state as an int.
        body = {"api_type_id": api_type_id, "state": 1 if state else 0}
        return self._patch_state(
            V1_CLIENT_STATE_PATH.format(school_id=school_id), body, school_id, api_type_id
        )

    def _patch_state(
        self, path: str, body: dict[str, Any], school_id: int, api_type_id: int
    ) -> dict[str, Any]:
        try:
            payload = self._send("PATCH", path, json=body, allow_empty=True)
        except D6ValidationError as err:
            if not already_in_state(err):
                raise
            payload = err.body
        record = client_integration_record(payload)
        if record is not None:
            return record
        # 204 (v1 answers with an empty body) or an answer without the record: read it back.
        record = self.get_client_integration(school_id, api_type_id)
        if record is None:
            raise D6ResponseError(
                f"d6 accepted the change but school {school_id} / API type {api_type_id} is not listed",
                method="PATCH",
                url=self.base_url + path,
            )
        return record
