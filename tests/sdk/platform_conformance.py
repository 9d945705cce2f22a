"""Drives a running tributary-api with the official Codat Platform SDK (codat-platform 6.0.0 or
4.0.0) and fails on any parse or status error.

Environment: TRIBUTARY_BASE_URL, TRIBUTARY_API_KEY, TRIBUTARY_LINKED_COMPANY_ID and
TRIBUTARY_LINKED_CONNECTION_ID (a company with a Linked connection, prepared by the Rust harness).
"""

import base64
import importlib.metadata
import os
import sys
import traceback

from codat_platform import CodatPlatform
from codat_platform.models import shared
from codat_platform.utils import BackoffStrategy, RetryConfig

from codat_platform.models import errors

VERSION = importlib.metadata.version("codat-platform")
MAJOR = int(VERSION.split(".")[0])
BASE = os.environ["TRIBUTARY_BASE_URL"]
KEY = os.environ["TRIBUTARY_API_KEY"]
LINKED_COMPANY = os.environ["TRIBUTARY_LINKED_COMPANY_ID"]
LINKED_CONNECTION = os.environ["TRIBUTARY_LINKED_CONNECTION_ID"]

p = CodatPlatform(
    security=shared.Security(auth_header="Basic " + base64.b64encode(KEY.encode()).decode()),
    server_url=BASE,
    retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False),
    timeout_ms=10_000,
)

passed, failed = [], []


def check(name):
    def wrap(fn):
        try:
            fn()
            passed.append(name)
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn

    return wrap


def unwrap(res, attr):
    """Some SDK generations wrap the model in a response object (`res.<attr>`); 4.0.0 and 6.0.0
    return the model itself."""
    value = getattr(res, attr, res)
    assert value is not None, f"no {attr} in {res}"
    return value


state = {}


@check("companies.create returns the company with a redirect")
def _():
    body = {"name": "SDK Shop (One)", "description": "made by the SDK"}
    if MAJOR >= 6:
        body["tags"] = {"region": "uk"}
    c = unwrap(p.companies.create(request=body), "company")
    assert c.name == "SDK Shop One", c.name
    assert c.redirect.endswith("/link/" + c.id), c.redirect
    state["company"] = c.id
    for i in range(2, 6):
        unwrap(p.companies.create(request={"name": f"SDK Shop {i}"}), "company")


@check("companies.list pages, filters and orders")
def _():
    page = unwrap(p.companies.list(request={"page": 2, "page_size": 2}), "companies")
    assert page.page_number == 2 and page.page_size == 2, page
    assert page.total_results >= 5, page.total_results
    assert len(page.results) == 2
    assert page.links.self_.href == "/companies"
    assert page.links.next is not None and page.links.previous is not None
    q = unwrap(p.companies.list(request={"query": "name~sdk shop && name!=SDK Shop 2", "order_by": "-name", "page_size": 100}), "companies")
    names = [c.name for c in q.results]
    assert names == sorted(names, reverse=True), names
    assert "SDK Shop 2" not in names and len(names) == 4, names
    if MAJOR >= 6:
        t = unwrap(p.companies.list(request={"tags": "region=uk"}), "companies")
        assert [c.id for c in t.results] == [state["company"]], t


@check("companies.get, update and replace")
def _():
    c = unwrap(p.companies.get(request={"company_id": state["company"]}), "company")
    assert c.id == state["company"]
    if MAJOR >= 6:
        u = p.companies.update(request={"company_id": c.id, "company_update_request": {"name": "SDK Renamed"}})
        assert u.name == "SDK Renamed" and u.description == "made by the SDK", u
        r = p.companies.replace(request={"company_id": c.id, "company_request_body": {"name": "SDK Replaced"}})
        assert r.name == "SDK Replaced" and r.description is None, r
    else:
        r = unwrap(p.companies.update(request={"company_id": c.id, "company_request_body": {"name": "SDK Replaced"}}), "company")
        assert r.name == "SDK Replaced", r


@check("integrations.list, get and get_branding")
def _():
    l = unwrap(p.integrations.list(request={}), "integrations")
    keys = [i.key for i in l.results]
    assert keys == ["exgd", "yzth"], keys
    i = unwrap(p.integrations.get(request={"platform_key": "yzth"}), "integration")
    assert i.name == "Stripe Test" and i.enabled is True, i
    b = unwrap(p.integrations.get_branding(request={"platform_key": "exgd"}), "branding")
    assert b.logo.full.image.src.endswith(".svg"), b


@check("connections.create, list, get and delete")
def _():
    c = unwrap(p.connections.create(request={"company_id": state["company"], "request_body": {"platform_key": "yzth"}}), "connection")
    assert str(c.status.value if hasattr(c.status, "value") else c.status) == "PendingAuth", c.status
    assert c.link_url.endswith("/start"), c.link_url
    l = unwrap(p.connections.list(request={"company_id": state["company"], "query": "status=PendingAuth", "page": 1, "page_size": 10}), "connections")
    assert [x.id for x in l.results] == [c.id], l
    g = unwrap(p.connections.get(request={"company_id": state["company"], "connection_id": c.id}), "connection")
    assert g.integration_key == "yzth", g
    p.connections.delete(request={"company_id": state["company"], "connection_id": c.id})
    try:
        p.connections.get(request={"company_id": state["company"], "connection_id": c.id})
        raise AssertionError("deleted connection still readable")
    except errors.ErrorMessage as e:
        assert e.data.status_code == 404, e.data


@check("connections.unlink turns a Linked connection Unlinked")
def _():
    u = unwrap(
        p.connections.unlink(
            request={"company_id": LINKED_COMPANY, "connection_id": LINKED_CONNECTION, "update_connection_status": {"status": "Unlinked"}}
        ),
        "connection",
    )
    assert str(u.status.value if hasattr(u.status, "value") else u.status) == "Unlinked", u.status


@check("errors arrive as ErrorMessage with Codat's fields")
def _():
    try:
        p.companies.get(request={"company_id": "0b8e6d2a-3c4f-4a1b-8e7d-5f6a7b8c9d99"})
        raise AssertionError("no error for an unknown company")
    except errors.ErrorMessage as e:
        assert e.data.status_code == 404 and e.data.correlation_id and e.data.service == "PublicApi", e.data
    try:
        p.companies.list(request={"query": "colour=red"})
        raise AssertionError("no error for an unknown field")
    except errors.ErrorMessage as e:
        assert e.data.status_code == 400 and "colour" in e.data.error, e.data


@check("settings: profile, sync settings and API keys")
def _():
    prof = unwrap(p.settings.get_profile(), "profile")
    assert prof.name
    upd = {"name": "SDK Lender", "redirect_url": "https://lender.example/linked/{companyId}"}
    prof2 = unwrap(p.settings.update_profile(request=upd), "profile")
    assert prof2.redirect_url == upd["redirect_url"], prof2
    ss = unwrap(p.settings.get_sync_settings(), "sync_settings")
    assert len(ss.settings) == 11, ss
    if MAJOR >= 6:
        p.settings.update_sync_settings(request={"client_id": ss.client_id, "settings": [s.model_dump(by_alias=False) for s in ss.settings], "overrides_defaults": True})
        cs = p.companies.get_company_sync_settings(request={"company_id": state["company"]})
        assert cs.overrides_defaults is False and len(cs.settings) == 11, cs
    keys = unwrap(p.settings.list_api_keys(), "api_keys")
    assert len(keys.results) >= 1
    k = unwrap(p.settings.create_api_key(request={"name": "sdk"}), "api_key_details")
    assert k.api_key and k.name == "sdk", k


@check("companies.delete removes the company")
def _():
    p.companies.delete(request={"company_id": state["company"]})
    try:
        p.companies.get(request={"company_id": state["company"]})
        raise AssertionError("deleted company still readable")
    except errors.ErrorMessage as e:
        assert e.data.status_code == 404


print(f"codat-platform {VERSION}: {len(passed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
