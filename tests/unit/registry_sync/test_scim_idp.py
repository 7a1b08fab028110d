"""What identity providers send over SCIM (issue #25): Entra ID's and
Okta's documented provisioning requests (tests/fixtures/scim_idp) parse,
keep what the registry keeps and set the rest aside (pure, no broker)."""

import json
from datetime import date
from pathlib import Path

import pytest

from services.common.contract.errors import InvalidRequest
from services.registry_sync import scim

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scim_idp"
TODAY = date(2026, 9, 1)


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def created(name):
    return scim.student_columns(
        scim.parse_resource("User", fixture(name), "create"), TODAY
    )


def test_entra_create_keeps_the_registry_fields_and_sets_the_rest_aside():
    columns = created("entra_create_user")
    assert columns["user_name"] == "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
    assert columns["external_id"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    # employeeNumber is the student number when our extension gives none.
    assert columns["student_number"] == "20240117"
    assert columns["department"] == "Grade 7"
    assert columns["formatted_name"] == "givenName familyName"
    stored = json.dumps(columns["doc"])
    for unkept in ("emails", "phoneNumbers", "title", "locale", "manager", "roles"):
        assert unkept not in stored
    assert "enterprise" not in stored


def test_okta_create_is_accepted_without_its_password_or_emails():
    columns = created("okta_create_user")
    assert columns["student_number"] == "test.user@okta.local"  # userName last
    assert columns["display_name"] == "Test User" and columns["active"] is True
    stored = json.dumps(columns["doc"])
    assert "1mz050nq" not in stored and "emails" not in stored


def test_our_extension_wins_over_employee_number():
    document = fixture("entra_create_user")
    document["schemas"].append(scim.STUDENT_URN)
    document[scim.STUDENT_URN] = {"studentNumber": "S-1", "department": "初一"}
    columns = scim.student_columns(
        scim.parse_resource("User", document, "create"), TODAY
    )
    assert columns["student_number"] == "S-1" and columns["department"] == "初一"


def test_attribute_names_are_case_insensitive():
    document = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "u1",
        "Emails": [{"value": "a@b.cn"}],
        "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {
            "EmployeeNumber": "77"
        },
    }
    columns = scim.student_columns(
        scim.parse_resource("User", document, "create"), TODAY
    )
    assert columns["student_number"] == "77"


def patched(name, start="entra_create_user"):
    resource = scim.parse_resource("User", fixture(start), "create")
    patch = scim.parse_patch("User", fixture(name))
    changed = patch is not None and scim.apply_patch(patch, resource)
    return changed, scim.student_columns(resource, TODAY)


def test_entra_multi_valued_patch_applies_the_name_and_drops_the_email():
    changed, columns = patched("entra_patch_multi_valued")
    assert changed and columns["family_name"] == "updatedFamilyName"
    assert "updatedEmail" not in json.dumps(columns["doc"])


def test_entra_enterprise_patch_moves_department_and_drops_manager():
    changed, columns = patched("entra_patch_enterprise")
    assert changed and columns["department"] == "Grade 8"


def test_entra_replace_without_path_with_string_booleans():
    changed, columns = patched("entra_patch_no_path")
    assert changed and columns["display_name"] == "updatedDisplayName"
    assert columns["active"] is False
    assert "Monitor" not in json.dumps(columns["doc"])


def test_a_patch_of_only_unkept_attributes_changes_nothing():
    assert scim.parse_patch("User", fixture("entra_patch_emails_only")) is None


def test_okta_deactivation():
    changed, columns = patched("okta_deactivate_user", start="okta_create_user")
    assert changed and columns["active"] is False


def test_what_is_not_an_idp_quirk_is_still_refused():
    with pytest.raises(InvalidRequest):
        scim.parse_resource("User", {"schemas": [], "userName": 5}, "create")
    with pytest.raises(InvalidRequest):
        scim.parse_patch("User", {"Operations": [{"op": "frobnicate", "path": "x"}]})


def test_published_schema_promises_none_of_what_is_set_aside():
    published = json.dumps(scim.discovery("http://x/scim/v2")["schemas"])
    for unkept in ('"emails"', '"phoneNumbers"', '"title"', "enterprise:2.0:User"):
        assert unkept not in published


def test_a_schools_sources_choose_the_student_number_and_the_id_number():
    sources = {
        "student_number": ["userName", "extension"],
        "id_number": ["employeeNumber"],
    }
    document = fixture("entra_create_user")
    document["schemas"].append(scim.STUDENT_URN)
    document[scim.STUDENT_URN] = {"studentNumber": "S-1", "idType": "passport"}
    resource = scim.parse_resource("User", document, "create", sources)
    columns = scim.student_columns(resource, TODAY)
    assert columns["student_number"] == document["userName"]
    assert columns["id_number"] == "20240117"  # the employeeNumber
    # PATCH of the enterprise attribute follows the same mapping.
    patch = scim.parse_patch(
        "User",
        {
            "Operations": [
                {
                    "op": "Replace",
                    "path": f"{scim.ENTERPRISE_URN}:employeeNumber",
                    "value": "E99",
                }
            ]
        },
        sources,
    )
    assert scim.apply_patch(patch, resource)
    assert scim.student_columns(resource, TODAY)["id_number"] == "E99"


def test_sources_default_and_refuse_what_they_cannot_be():
    assert scim.checked_sources(None) == scim.DEFAULT_SOURCES
    assert scim.checked_sources({"id_number": ["externalId"]})["id_number"] == (
        "externalId",
    )
    for wrong in (
        {"student_number": []},
        {"student_number": ["userName", "userName"]},
        {"id_number": ["userName"]},  # a login name is never an ID number
        {"student_number": ["emails"]},
    ):
        with pytest.raises(InvalidRequest) as refused:
            scim.checked_sources(wrong)
        assert refused.value.code == "scim_sources_invalid"


def test_a_malformed_idp_document_is_refused_not_crashed_on():
    for document in (
        {"schemas": -79507, "userName": "u", "": [False]},
        {"schemas": "urn:x", "userName": "u"},
        {"schemas": [5, None], "userName": "u", "meta": {"x": [1]}},
    ):
        with pytest.raises(InvalidRequest):
            scim.parse_resource("User", document, "create")
    patch = {"Operations": [{"op": "replace", "value": {"schemas": 7, "active": "x"}}]}
    with pytest.raises(InvalidRequest):
        scim.apply_patch(
            scim.parse_patch("User", patch),
            scim.parse_resource("User", fixture("okta_create_user"), "create"),
        )
