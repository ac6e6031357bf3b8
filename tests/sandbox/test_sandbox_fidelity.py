"""What a third-party d6 client meets in the sandbox as on the live service, over real HTTP.

One error body shape per API version on every route, the rate limit counted after
authentication, the live name of API type 8, and the routing layer that v1 routes plug into.
"""

from __future__ import annotations

import pytest
from sandbox_client import CLIENT_INTEGRATIONS, FIN, D6Client, pairs

from d6_sandbox import app
from d6_sandbox.protocol import Route, json_response, not_found, query_filters

V1_CLIENTS = "/v1/settings/clients"
WRONG = {"HTTP-X-USERNAME": "sandbox-user", "HTTP-X-PASSWORD": "not-the-password"}


def _v1_shaped(reply) -> dict:
    body = reply.json()
    assert set(body) == {"error", "error_description"}, body
    assert all(isinstance(v, str) and v for v in body.values()), body
    return body


def _v2_shaped(reply) -> dict:
    body = reply.json()
    assert body["success"] is False and isinstance(body["message"], str), body
    assert set(body) <= {"success", "message", "validation_errors"}, body
    return body


# -- one error shape per version ----------------------------------------------------------------


def test_a_bad_password_gets_the_error_shape_of_the_route_version(d6):
    v1 = d6.get(V1_CLIENTS, auth=False, headers=WRONG)
    assert v1.status_code == 401
    assert _v1_shaped(v1) == {
        "error": "Unauthorized",
        "error_description": "Invalid username or password",
    }
    v2 = d6.get(CLIENT_INTEGRATIONS, auth=False, headers=WRONG)
    assert v2.status_code == 401
    assert _v2_shaped(v2) == {"success": False, "message": "Invalid username or password"}


def test_a_429_gets_the_error_shape_of_the_route_version(make_sandbox):
    # One request per 100 s with a burst of one: the second request is refused however slow
    # the machine.
    d6 = D6Client(make_sandbox(schools=4, learners_per_school=10, rate_limit=0.01))
    for path, shaped in ((V1_CLIENTS, _v1_shaped), (CLIENT_INTEGRATIONS, _v2_shaped)):
        assert d6.get(path).status_code == 200
        limited = d6.get(path)
        assert limited.status_code == 429, path
        assert int(limited.headers["Retry-After"]) >= 1
        body = shaped(limited)
        assert "Too Many" in (body.get("error") or body.get("message"))
        d6.control.configure(rate_limit=0)  # refill before the other version
        d6.control.configure(rate_limit=0.01)


def test_a_bad_id_in_the_path_gets_the_error_shape_of_the_route_version(d6):
    v1 = d6.get(f"{V1_CLIENTS}/abc")
    assert v1.status_code == 400
    assert _v1_shaped(v1) == {
        "error": "Bad Request",
        "error_description": "The school_id must be an integer.",
    }
    school_id = pairs(d6.control, activated=True)[0]["school_id"]
    v2 = d6.get(f"{FIN}/learners/abc", school_id=school_id)
    assert v2.status_code == 400
    assert _v2_shaped(v2)["validation_errors"] == {
        "learner_id": "The learner_id must be an integer."
    }


@pytest.mark.parametrize("kind, status", [("500", 500), ("503", 503), ("429", 429)])
def test_injected_d6_errors_take_the_shape_of_the_route_version(d6, kind, status):
    d6.control.set_faults(script=[{"kind": kind, "times": 2}])
    v1 = d6.get(V1_CLIENTS)
    v2 = d6.get(CLIENT_INTEGRATIONS)
    assert (v1.status_code, v2.status_code) == (status, status)
    _v1_shaped(v1)
    _v2_shaped(v2)
    if kind != "500":
        assert v1.headers["Retry-After"] == v2.headers["Retry-After"] == "1"


def test_route_not_found_is_v1_shaped_on_every_version_as_live(d6):
    for path in ("/v1/settings/nothing", "/v2/settings/nothing", "/v3/anything"):
        reply = d6.get(path)
        assert reply.status_code == 404
        assert _v1_shaped(reply)["error"] == "route_not_found"


def test_v1_clients_for_one_school_list_only_that_school(d6):
    school_id = next(
        sid
        for sid in {p["school_id"] for p in pairs(d6.control)}
        if len([p for p in pairs(d6.control) if p["school_id"] == sid]) == 2
    )
    rows = d6.get(f"{V1_CLIENTS}/{school_id}").json()
    assert {r["school_login_id"] for r in rows} == {str(school_id)}
    assert sorted(r["api_type_id"] for r in rows) == ["8", "9"]
    everyone = d6.get(V1_CLIENTS).json()
    assert len(everyone) > len(rows)


# -- rate limit after authentication ------------------------------------------------------------


def test_wrong_password_requests_do_not_use_up_the_integrators_quota(make_sandbox):
    # A burst of one and one request per 100 s: any request counted against the integrator
    # before its own would leave it a 429.
    d6 = D6Client(make_sandbox(schools=4, learners_per_school=10, rate_limit=0.01))
    guesses = [d6.get(CLIENT_INTEGRATIONS, auth=False, headers=WRONG) for _ in range(5)]
    assert [r.status_code for r in guesses] == [401, 429, 429, 429, 429]
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 429  # its own quota, used by itself


def test_unauthenticated_requests_are_limited_in_their_own_bucket(make_sandbox):
    d6 = D6Client(make_sandbox(schools=4, learners_per_school=10, rate_limit=0.01))
    assert [d6.get(V1_CLIENTS).status_code for _ in range(2)] == [200, 429]
    # The integrator used its quota; a caller without credentials still gets its 401 first.
    first = d6.get(V1_CLIENTS, auth=False)
    assert first.status_code == 401
    assert _v1_shaped(first)["error"] == "Unauthorized"
    flood = d6.get(V1_CLIENTS, auth=False)
    assert flood.status_code == 429
    assert _v1_shaped(flood)["error"] == "Too Many Requests"


# -- the live name of API type 8 ----------------------------------------------------------------


def test_type8_label_live_names_api_type_8_as_live_accounts_see_it(make_sandbox):
    d6 = D6Client(make_sandbox(schools=4, learners_per_school=10, type8_label="live"))
    names = {(r["api_type_id"], r["api_type"]) for r in d6.walk(CLIENT_INTEGRATIONS)}
    assert names == {(8, "d6 Integrate API"), (9, "Curriculum+ API")}
    v1 = {(r["api_type_id"], r["api_type"]) for r in d6.get(V1_CLIENTS).json()}
    assert v1 == {("8", "d6 Integrate API"), ("9", "Curriculum+ API")}
    assert {r["api_type"] for r in d6.control.data("client_integrations")} == {
        "d6 Integrate API",
        "Curriculum+ API",
    }
    d6.control.configure(type8_label="docs")
    assert {r["api_type"] for r in d6.walk(CLIENT_INTEGRATIONS)} == {
        "Admin+ API",
        "Curriculum+ API",
    }


def test_the_docs_label_is_the_default(d6):
    assert d6.control.config()["type8_label"] == "docs"
    assert "Admin+ API" in {r["api_type"] for r in d6.walk(CLIENT_INTEGRATIONS)}


# -- the routing layer v1 routes plug into ------------------------------------------------------


async def _grade_list(ctx):
    filters = query_filters(ctx.query, ints=("grade_id",))
    if filters.get("grade_id") == 99:
        raise not_found("No grade records found")
    return json_response([{"school": str(ctx.school_id), "version": ctx.version}])


@pytest.fixture
def plugged(monkeypatch):
    """A v1 school-in-path route registered the way a new sandbox module registers its own."""
    route = Route(
        {},
        {"GET": _grade_list},
        school_scoped=False,
        id_name="school_login_id",
        school_in_path=True,
        api_type_id=9,
    )
    monkeypatch.setitem(app.ROUTES, "v1/testplus/grades", route)
    return "/v1/testplus/grades"


def _school_with(control, api_type_id: int, activated: bool | None) -> int:
    listed = {(p["school_id"], p["api_type_id"]): p for p in pairs(control)}
    for school in control.data("schools"):
        pair = listed.get((school["school_id"], api_type_id))
        if activated is None and pair is None:
            return school["school_id"]
        if (
            pair
            and activated is not None
            and (pair["activated_by_integrator"] == "Yes") == activated
        ):
            return school["school_id"]
    raise AssertionError("no such school in the seeded district")


def test_a_plugged_v1_route_gets_v1_errors_auth_and_school_checks(d6, plugged):
    active = _school_with(d6.control, 9, activated=True)
    ok = d6.get(f"{plugged}/{active}")
    assert (ok.status_code, ok.json()) == (200, [{"school": str(active), "version": "v1"}])
    bad_filter = d6.get(f"{plugged}/{active}", params={"grade_id": "x"})
    assert bad_filter.status_code == 400
    assert _v1_shaped(bad_filter) == {
        "error": "Bad Request",
        "error_description": "The grade_id must be an integer.",
    }
    none = d6.get(f"{plugged}/{active}", params={"grade_id": 99})
    assert (none.status_code, _v1_shaped(none)) == (
        404,
        {"error": "Not found", "error_description": "No grade records found"},
    )
    not_active = d6.get(f"{plugged}/{_school_with(d6.control, 9, activated=False)}")
    assert not_active.status_code == 403
    assert _v1_shaped(not_active) == {
        "error": "Integration not activated",
        "error_description": "Please activate the Curriculum+ API for this client before making "
        "this request",
    }
    unlisted = d6.get(f"{plugged}/{_school_with(d6.control, 9, activated=None)}")
    assert unlisted.status_code == 401
    assert _v1_shaped(unlisted) == {
        "error": "Unauthorized",
        "error_description": "Client access not authorised",
    }
    assert _v1_shaped(d6.get(plugged))["error"] == "route_not_found"  # no school in the path
    assert d6.get(f"{plugged}/{active}", auth=False).status_code == 401


@pytest.mark.parametrize("text", ["²", "١٠٠٠", "--5", "1" * 5000, "1e3"])
def test_ids_that_are_not_plain_ascii_digits_get_a_400_never_another_record(d6, text):
    v1 = d6.get(f"{V1_CLIENTS}/{text}")
    assert v1.status_code == 400
    assert _v1_shaped(v1)["error_description"] == "The school_id must be an integer."
    school_id = pairs(d6.control, activated=True)[0]["school_id"]
    v2 = d6.get(f"{FIN}/learners/{text}", school_id=school_id)
    assert v2.status_code == 400
    assert "learner_id" in _v2_shaped(v2)["validation_errors"]
    header = d6.get(f"{FIN}/learners", headers={"HTTP-X-SCHOOLID": text.encode()})
    assert header.status_code == 400
    assert "HTTP-X-SCHOOLID" in _v2_shaped(header)["validation_errors"]
    query = d6.get(CLIENT_INTEGRATIONS, params={"school_id": text})
    assert query.status_code == 400
    assert "school_id" in _v2_shaped(query)["validation_errors"]
