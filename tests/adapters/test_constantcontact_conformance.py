"""Constant Contact's own Python client (``constant-contact-api-client``, generated from the vendor's
spec) against the emulator served by uvicorn on loopback: its calls and its strict models accept what
the emulator answers.

The client runs in the conformance environment (``tests/adapters/conformance.py``), as a script
(``OFFICIAL_CLIENT``) that prints what it saw as JSON.
"""

from __future__ import annotations

import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import generate
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs
from tests.adapters.conformance import official_python, run_official
from tests.emulators.serving import served

# Runs in .venv-conformance: argv is the emulator's base URL and an access token; prints a summary.
OFFICIAL_CLIENT = """
import json, sys
import constant_contact_api_client as cc
from constant_contact_api_client.models import CreateCustomFieldsRequest, UpdateListRequest
from constant_contact_api_client.models import CreateImportJSONActivityRequest as ImportRequest
from constant_contact_api_client.models import CreateImportJSONActivityRequestImportDataInner as ImportRow
config = cc.Configuration(host=sys.argv[1] + "/v3", access_token=sys.argv[2])
with cc.ApiClient(config) as api:
    include = "custom_fields,list_memberships"
    page = cc.ContactsApi(api).get_all_contacts(limit=50, include=include, include_count=True)
    made = cc.ContactListsApi(api).create_list(UpdateListRequest(name="Conformance", favorite=False))
    field = cc.ContactsCustomFieldsApi(api).create_custom_fields(
        CreateCustomFieldsRequest(label="custom_field_name", type="string")
    )
    row = ImportRow(
        email="conform@example.com", first_name="Con", cfcustom_field_name="from the official client"
    )
    bulk = cc.BulkActivitiesApi(api)
    activity = bulk.create_import_json_activity(ImportRequest(import_data=[row], list_ids=[made.list_id]))
    states = []
    for _ in range(10):
        status = bulk.get_activity_by_id(activity.activity_id)
        states.append(status.state)
        if status.state not in ("initialized", "processing"):
            break
following = page.links.next.href if page.links and page.links.next else None
print(json.dumps({
    "contacts": len(page.contacts), "count": page.contacts_count, "next": following,
    "list": made.list_id, "field": field.name, "activity": activity.activity_id, "states": states,
    "errors": status.activity_errors, "people": status.status.person_count,
}))
"""


@pytest.mark.timeout(600)
def test_the_official_client_reads_creates_imports_and_polls_against_the_emulator() -> None:
    official_python()  # made before the emulator starts, so the server waits for nothing
    state = ConstantContactState(Knobs(rate_limited=False, activity_polls=1), seed=7)
    generate(state, seed=7, contacts=80, campaigns=0)
    token = str(state.grants.issue("contact_data offline_access")["access_token"])
    with served(create_app(state)) as url:
        summary = run_official(OFFICIAL_CLIENT, url, token)
    assert (
        summary["contacts"] == 50
        and summary["count"] == 80
        and summary["next"].startswith("/v3/contacts?cursor=")
    )
    assert summary["field"] == "custom_field_name"
    assert (
        summary["states"] == ["processing", "completed"]
        and summary["errors"] == []
        and summary["people"] == 1
    )
    imported = state.contact_by_email("conform@example.com")
    assert imported is not None and imported.scalars["first_name"] == "Con"
    assert summary["list"] in imported.lists
    assert list(imported.custom.values()) == ["from the official client"]
