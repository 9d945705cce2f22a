"""Drives a running stripe-sandbox with the official `stripe` Python library (PyPI) and fails on
any error: customers listed with auto-pagination across several pages, a balance retrieved, the
account and an OAuth round trip through the library's OAuth helper.

Environment: SANDBOX_URL, SANDBOX_SECRET_KEY, SANDBOX_CLIENT_ID, SANDBOX_ACCOUNT (a connected
test account), SANDBOX_CUSTOMERS (how many customers it has).
"""

import os
import sys
import urllib.parse

import stripe

URL = os.environ["SANDBOX_URL"]
KEY = os.environ["SANDBOX_SECRET_KEY"]
ACCOUNT = os.environ["SANDBOX_ACCOUNT"]
EXPECTED = int(os.environ["SANDBOX_CUSTOMERS"])

client = stripe.StripeClient(
    KEY,
    base_addresses={"api": URL, "connect": URL},
    max_network_retries=0,
)
passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def customers_auto_paginate():
    page = client.v1.customers.list(params={"limit": 3}, options={"stripe_account": ACCOUNT})
    assert page.has_more, "a profile with more than 3 customers has more than one page"
    ids = [c.id for c in page.auto_paging_iter()]
    assert len(ids) == EXPECTED, (len(ids), EXPECTED)
    assert len(set(ids)) == len(ids), "no customer twice"
    created = [c.created for c in client.v1.customers.list(params={"limit": 100}, options={"stripe_account": ACCOUNT}).data]
    assert created == sorted(created, reverse=True), "newest first"


def balance():
    b = client.v1.balance.retrieve(options={"stripe_account": ACCOUNT})
    assert b.object == "balance"
    currencies = {x.currency for x in b.available}
    assert {"jpy", "kwd"} <= currencies, currencies


def account():
    a = client.v1.accounts.retrieve_current(options={"stripe_account": ACCOUNT})
    assert a.id == ACCOUNT, a.id


def errors_are_typed():
    try:
        client.v1.customers.retrieve("cus_missing", options={"stripe_account": ACCOUNT})
        raise AssertionError("no error")
    except stripe.InvalidRequestError as e:
        assert e.http_status == 404 and e.code == "resource_missing", (e.http_status, e.code)
    bad = stripe.StripeClient("sk_test_wrong", base_addresses={"api": URL}, max_network_retries=0)
    try:
        bad.v1.customers.list(options={"stripe_account": ACCOUNT})
        raise AssertionError("no error")
    except stripe.AuthenticationError:
        pass


def oauth_round_trip():
    import json
    import urllib.request

    body = json.dumps({"client_id": os.environ["SANDBOX_CLIENT_ID"], "redirect_uri": "http://127.0.0.1:9/cb", "scope": "read_only", "state": "s1"}).encode()
    req = urllib.request.Request(URL + "/_sandbox/oauth/approve", data=body, headers={"content-type": "application/json"})
    redirect = json.load(urllib.request.urlopen(req))["redirect"]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(redirect).query)["code"][0]
    token = client.oauth.token(params={"grant_type": "authorization_code", "code": code})
    assert token.stripe_user_id.startswith("acct_") and token.token_type == "bearer", token
    assert token.livemode is False
    b = client.v1.balance.retrieve(options={"stripe_account": token.stripe_user_id})
    assert b.object == "balance"


check("customers auto-paginate across pages", customers_auto_paginate)
check("balance retrieve", balance)
check("account retrieve", account)
check("errors map to the library's error classes", errors_are_typed)
check("OAuth code exchange through the library", oauth_round_trip)
print(f"stripe {stripe.VERSION}: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
