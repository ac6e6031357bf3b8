"""The sandbox's Settings routes, auth and routing quirks over real HTTP (CONTRACT.md §1-§5)."""

from __future__ import annotations

import json

import pytest
from sandbox_client import (
    CLIENT_INTEGRATIONS,
    FIN,
    authorised_only_school,
    finance_school,
    pairs,
    unlisted_school,
)

from tests.support import SANDBOX_PASSWORD

RECORD_KEYS = {
    "school_id",
    "school_name",
    "admin_email_address",
    "telephone_calling_code",
    "telephone_number",
    "api_type_id",
    "api_type",
    "activated_by_integrator",
}


def test_client_integrations_cover_every_onboarding_state(d6):
    records = d6.walk(CLIENT_INTEGRATIONS)
    assert records and all(set(r) == RECORD_KEYS for r in records)
    assert all(
        isinstance(r["school_id"], int) and isinstance(r["api_type_id"], int) for r in records
    )
    assert {r["activated_by_integrator"] for r in records} == {"Yes", "No"}
    assert {(r["api_type_id"], r["api_type"]) for r in records} == {
        (8, "Admin+ API"),
        (9, "Curriculum+ API"),
    }
    school_1000 = [r for r in records if r["school_id"] == 1000]
    assert school_1000[0]["school_name"] == "d6+ Primary School"
    # A school that authorised nothing is simply not listed.
    assert unlisted_school(d6.control) not in {r["school_id"] for r in records}


def test_client_integrations_filter_by_school_and_api_type(d6):
    school_id = finance_school(d6.control)
    records = d6.walk(CLIENT_INTEGRATIONS, params={"school_id": school_id, "api_type_id": 8})
    assert [(r["school_id"], r["api_type_id"]) for r in records] == [(school_id, 8)]


def test_client_integrations_refuse_a_non_integer_filter(d6):
    reply = d6.get(CLIENT_INTEGRATIONS, params={"school_id": "abc"})
    assert reply.status_code == 400
    assert reply.json() == {
        "success": False,
        "message": "Validation Failed",
        "validation_errors": {"school_id": "The school_id must be an integer."},
    }


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_change_state_answers_200_then_400_already(d6_docs, method):
    pair = pairs(d6_docs.control, activated=False)[0]
    body = {"school_id": pair["school_id"], "api_type_id": pair["api_type_id"], "state": 1}
    first = d6_docs.call(method, CLIENT_INTEGRATIONS, json=body)
    assert first.status_code == 200
    assert first.json()["success"] is True
    assert first.json()["message"] == "Integration successfully activated"
    assert first.json()["data"]["activated_by_integrator"] == "Yes"
    again = d6_docs.call(method, CLIENT_INTEGRATIONS, json=body)
    assert again.status_code == 400
    assert again.json()["message"] == "Integration already activated"
    assert again.json()["data"]["school_id"] == pair["school_id"]
    off = d6_docs.call(method, CLIENT_INTEGRATIONS, json={**body, "state": False})
    assert (off.status_code, off.json()["message"]) == (200, "Integration successfully deactivated")
    off_again = d6_docs.call(method, CLIENT_INTEGRATIONS, json={**body, "state": "0"})
    assert (off_again.status_code, off_again.json()["message"]) == (
        400,
        "Integration already deactivated",
    )


def test_change_state_refuses_a_pair_the_school_has_not_authorised(d6_docs):
    school_id = unlisted_school(d6_docs.control)
    reply = d6_docs.call(
        "PATCH", CLIENT_INTEGRATIONS, json={"school_id": school_id, "api_type_id": 8, "state": True}
    )
    assert reply.status_code == 401
    assert reply.json() == {"success": False, "message": "Client has not authorised access"}


def test_change_state_validates_every_field(d6_docs):
    reply = d6_docs.call(
        "PATCH", CLIENT_INTEGRATIONS, json={"school_id": 1000, "api_type_id": 7, "state": "maybe"}
    )
    assert reply.status_code == 400
    assert reply.json()["validation_errors"] == {
        "api_type_id": "The api_type_id is invalid",
        "state": "The State must be a boolean",
    }
    missing = d6_docs.call("POST", CLIENT_INTEGRATIONS, json={})
    assert set(missing.json()["validation_errors"]) == {"school_id", "api_type_id", "state"}
    not_json = d6_docs.call(
        "PATCH", CLIENT_INTEGRATIONS, data="{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400


def test_v1_clients_are_a_bare_array_with_string_ids(d6):
    reply = d6.get("/v1/settings/clients")
    assert reply.status_code == 200
    records = reply.json()
    assert isinstance(records, list) and records
    assert all(
        isinstance(r["school_login_id"], str) and isinstance(r["api_type_id"], str) for r in records
    )
    one = d6.get("/v1/settings/clients/1000").json()
    assert {r["school_login_id"] for r in one} == {"1000"}


def test_v1_clients_answer_404_for_no_records(d6):
    reply = d6.get(f"/v1/settings/clients/{unlisted_school(d6.control)}")
    assert reply.status_code == 404
    assert reply.json() == {"error": "Not found", "error_description": "No records found"}


def test_v1_patch_answers_204_empty_and_is_idempotent(d6):
    pair = pairs(d6.control, activated=False)[0]
    path = f"/v1/settings/clients/{pair['school_id']}"
    for _ in range(2):
        reply = d6.call("PATCH", path, json={"api_type_id": pair["api_type_id"], "state": 1})
        assert (reply.status_code, reply.content) == (204, b"")
    now = d6.walk(
        CLIENT_INTEGRATIONS,
        params={"school_id": pair["school_id"], "api_type_id": pair["api_type_id"]},
    )
    assert now[0]["activated_by_integrator"] == "Yes"
    refused = d6.call(
        "PATCH",
        f"/v1/settings/clients/{unlisted_school(d6.control)}",
        json={"api_type_id": 8, "state": 1},
    )
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "Unauthorized",
        "error_description": "Client access not authorised",
    }


def test_the_live_profile_is_the_default_and_answers_route_not_found_for_v2_activation(d6):
    assert d6.control.config()["profile"] == "live"
    pair = pairs(d6.control, activated=False)[0]
    for method in ("PATCH", "POST"):
        reply = d6.call(
            method,
            CLIENT_INTEGRATIONS,
            json={"school_id": pair["school_id"], "api_type_id": pair["api_type_id"], "state": 1},
        )
        assert reply.status_code == 404
        assert reply.json() == {
            "error": "route_not_found",
            "error_description": "The requested route was not found.",
        }
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    assert pairs(d6.control, activated=False)[0] == pair  # nothing changed
    fallback = d6.call(
        "PATCH",
        f"/v1/settings/clients/{pair['school_id']}",
        json={"api_type_id": pair["api_type_id"], "state": 1},
    )
    assert fallback.status_code == 204


def test_activation_through_v1_opens_finance_in_the_live_profile(d6):
    school_id = authorised_only_school(d6.control)
    assert d6.get(f"{FIN}/learners", school_id=school_id).status_code == 401
    reply = d6.call(
        "PATCH", f"/v1/settings/clients/{school_id}", json={"api_type_id": 8, "state": 1}
    )
    assert reply.status_code == 204
    assert d6.get(f"{FIN}/learners", school_id=school_id).status_code == 200


def test_the_profile_can_be_switched_at_run_time_and_explicit_settings_win(d6_docs):
    body = {"school_id": 1001, "api_type_id": 8, "state": 1}
    assert d6_docs.control.config()["v2_activation_route"] is True
    config = d6_docs.control.configure(profile="live")
    assert (config["profile"], config["v2_activation_route"]) == ("live", False)
    assert d6_docs.call("PATCH", CLIENT_INTEGRATIONS, json=body).status_code == 404
    config = d6_docs.control.configure(profile="live", v2_activation_route=True)
    assert config["v2_activation_route"] is True
    assert d6_docs.call("PATCH", CLIENT_INTEGRATIONS, json=body).status_code == 200
    d6_docs.control.reset()
    assert d6_docs.control.config()["profile"] == "docs"  # reset returns to the started profile


def test_an_unknown_profile_is_refused_naming_the_allowed_ones(d6):
    reply = d6.session.post(
        d6.handle.root_url + "/_sandbox/config", json={"profile": "staging"}, timeout=30
    )
    assert reply.status_code == 400
    assert "live" in reply.json()["error"] and "docs" in reply.json()["error"]
    assert d6.control.config()["profile"] == "live"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP-X-USERNAME": "sandbox-user"},
        {"HTTP-X-USERNAME": "sandbox-user", "HTTP-X-PASSWORD": "wrong-password"},
    ],
)
def test_bad_credentials_get_a_401_d6_error(d6, headers):
    reply = d6.get(CLIENT_INTEGRATIONS, auth=False, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["success"] is False


def test_unknown_routes_answer_route_not_found(d6):
    for path in ("/v2/nothing/here", "/v2/learners", f"{FIN}/ageanalysis/5"):
        reply = d6.get(path, school_id=1000)
        assert reply.status_code == 404, path
        assert reply.json()["error"] == "route_not_found"
        assert reply.json()["error_description"]


def test_a_path_without_a_version_answers_200_with_an_empty_body(d6):
    reply = d6.get("/settings/clientintegrations")
    assert (reply.status_code, reply.content) == (200, b"")


def test_activation_opens_finance_for_the_school(d6_docs):
    school_id = authorised_only_school(d6_docs.control)
    assert d6_docs.get(f"{FIN}/learners", school_id=school_id).status_code == 401
    d6_docs.call(
        "PATCH", CLIENT_INTEGRATIONS, json={"school_id": school_id, "api_type_id": 8, "state": True}
    )
    assert d6_docs.get(f"{FIN}/learners", school_id=school_id).status_code == 200


def test_activation_delay_keeps_finance_closed_until_it_passes(d6_docs):
    # [field] Data endpoints answer only 1-2 minutes after activation.
    d6_docs.control.configure(activation_delay_s=600)
    school_id = authorised_only_school(d6_docs.control)
    d6_docs.call(
        "PATCH", CLIENT_INTEGRATIONS, json={"school_id": school_id, "api_type_id": 8, "state": True}
    )
    assert d6_docs.get(f"{FIN}/learners", school_id=school_id).status_code == 401
    d6_docs.control.configure(activation_delay_s=0)
    assert d6_docs.get(f"{FIN}/learners", school_id=school_id).status_code == 200


def test_the_request_log_never_holds_header_values(d6):
    d6.get(CLIENT_INTEGRATIONS)
    d6.get(f"{FIN}/learners", school_id=1000)
    log = d6.control.requests()
    assert [e["path"] for e in log] == [
        "/api/v2/settings/clientintegrations",
        "/api/v2/finplus/debtmanagement/learners",
    ]
    assert log[1]["school_id"] == 1000 and log[0]["school_id"] is None
    assert set(log[0]) == {"method", "path", "query", "status", "fault", "school_id", "ts"}
    dumped = json.dumps(log)
    assert SANDBOX_PASSWORD not in dumped and "sandbox-user" not in dumped


def test_v1_patch_validates_its_body(d6):
    reply = d6.call("PATCH", "/v1/settings/clients/1000", json={"api_type_id": 8})
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "Bad Request",
        "error_description": "The state field is required.",
    }
    bad_type = d6.call(
        "PATCH", "/v1/settings/clients/1000", json={"api_type_id": "eight", "state": 1}
    )
    assert bad_type.status_code == 400 and "api_type_id" in bad_type.json()["error_description"]
