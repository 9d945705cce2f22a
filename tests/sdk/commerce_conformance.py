"""Drives a running tributary-api with the official Codat Commerce SDK (codat-commerce 0.35.0) for
every supported data type — get, list, paging to the end, queries and orderings — plus
codat-platform (4.0.0, installed beside it) for refresh and data status. Fails on any parse or
status error.

Environment: TRIBUTARY_BASE_URL, TRIBUTARY_API_KEY, TRIBUTARY_COMPANY_ID, TRIBUTARY_CONNECTION_ID
(a company whose Stripe Test connection has been synced).
"""

import base64
import importlib.metadata
import os
import sys
import traceback
from decimal import Decimal

import codat_commerce
from codat_commerce import CodatCommerce
from codat_commerce import models as cm
from codat_platform import CodatPlatform
from codat_platform.models import shared
from codat_platform.models import errors as perrors
from codat_platform.utils import BackoffStrategy, RetryConfig

BASE = os.environ["TRIBUTARY_BASE_URL"]
AUTH = "Basic " + base64.b64encode(os.environ["TRIBUTARY_API_KEY"].encode()).decode()
COMPANY = os.environ["TRIBUTARY_COMPANY_ID"]
CONNECTION = os.environ["TRIBUTARY_CONNECTION_ID"]

c = CodatCommerce(auth_header=AUTH, server_url=BASE, retry_config=codat_commerce.utils.RetryConfig("none", codat_commerce.utils.BackoffStrategy(1, 1, 1, 1), False), timeout_ms=20_000)
p = CodatPlatform(security=shared.Security(auth_header=AUTH), server_url=BASE, retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False), timeout_ms=20_000)

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


def req(**kw):
    return {"company_id": COMPANY, "connection_id": CONNECTION, **kw}


def walk(resource, page_size):
    """Every record of a list, page by page; checks the envelope on the way."""
    out, page = [], 1
    while True:
        r = resource.list(request=req(page=page, page_size=page_size))
        assert r.page_number == page and r.page_size == page_size, (r.page_number, r.page_size)
        out.extend(r.results or [])
        if r.links.next is None:
            assert len(out) == r.total_results, (len(out), r.total_results)
            return out
        page += 1


def value(e):
    return e.value if hasattr(e, "value") else e


LISTS = {
    "customers": ("customer_id", ["emailAddress~example.com", "customerName!=Nobody && createdDate>2024-01-01"], ["-createdDate", "customerName"]),
    "disputes": ("dispute_id", ["status=Won || status=Lost", "totalAmount>10 && currency!=JPY"], ["-totalAmount", "dueDate"]),
    "payments": ("payment_id", ["amount<0", "{currency=JPY || currency=KWD} && status=Paid", "paymentMethodRef.name=card"], ["-amount", "createdDate"]),
    "products": ("product_id", ["isGiftCard=false", "name~a"], ["name", "-createdDate"]),
    "transactions": ("transaction_id", ["type=PaymentFee", "totalAmount>=100 && currency=USD", "transactionSourceRef.type=Payment"], ["-totalAmount", "createdDate"]),
}

for name, (id_field, queries, orders) in LISTS.items():

    @check(f"{name}: paging to the end, get, queries and orderings")
    def _(name=name, id_field=id_field, queries=queries, orders=orders):
        resource = getattr(c, name)
        records = walk(resource, 7)
        assert records, f"no {name}"
        ids = [r.id for r in records]
        assert len(set(ids)) == len(ids), "a record twice"
        one = resource.get(request=req(**{id_field: ids[-1]}))
        assert one.id == ids[-1]
        for q in queries:
            r = resource.list(request=req(page=1, page_size=5000, query=q))
            assert r.total_results == len(r.results or []), q
        for o in orders:
            r = resource.list(request=req(page=1, page_size=5000, order_by=o))
            assert len(r.results or []) == len(records), o


@check("amounts are exact decimals and enums parse")
def _():
    pays = c.payments.list(request=req(page=1, page_size=5000)).results
    assert all(isinstance(x.amount, Decimal) for x in pays if x.amount is not None)
    assert {value(x.status) for x in pays} <= {"Paid", "Authorized", "Pending", "Failed", "Cancelled", "Unknown"}
    kwd = [x for x in pays if x.currency == "KWD"]
    assert kwd and all(x.amount == x.amount.quantize(Decimal("0.001")) for x in kwd)
    txns = c.transactions.list(request=req(page=1, page_size=5000, query="type=PaymentFee")).results
    fee = txns[0]
    assert fee.id.endswith(":Stripe processing fees")
    again = c.transactions.get(request=req(transaction_id=fee.id))
    assert again.id == fee.id and again.total_amount == fee.total_amount


@check("company info")
def _():
    info = c.company_info.get(request=req())
    assert info.commerce_platform_ref and info.commerce_platform_ref.startswith("acct_"), info
    assert info.account_balances and all(b.currency for b in info.account_balances)


@check("unsupported data types are 404, malformed queries 400, unknown fields 400")
def _():
    for fn in (lambda: c.orders.list(request=req(page=1, page_size=10)), lambda: c.locations.list(request=req())):
        try:
            fn()
            raise AssertionError("no error")
        except cm.ErrorMessage as e:
            assert e.data.status_code == 404 and "not supported" in e.data.error, e.data
    for q, needle in (("amount>", "Error parsing query"), ("colour=red", "colour")):
        try:
            c.payments.list(request=req(page=1, page_size=10, query=q))
            raise AssertionError("no error")
        except cm.ErrorMessage as e:
            assert e.data.status_code == 400 and needle in e.data.error, e.data


@check("codat-platform refresh and data status")
def _():
    status = p.refresh_data.get(request={"company_id": COMPANY})
    s = getattr(status, "data_statuses", status)
    for key in ("commerce_customers", "commerce_payments", "commerce_transactions"):
        ds = getattr(s, key)
        assert value(ds.current_status) == "Complete", (key, ds)
    op = p.refresh_data.by_data_type(request={"company_id": COMPANY, "data_type": "commerce-customers", "connection_id": CONNECTION})
    op = getattr(op, "pull_operation", op)
    assert value(op.status) in ("Queued", "Fetching", "Complete"), op
    p.refresh_data.all(request={"company_id": COMPANY})
    hist = p.refresh_data.list_pull_operations(request={"company_id": COMPANY, "page": 1, "page_size": 100})
    hist = getattr(hist, "pull_operations", hist)
    assert hist.total_results >= 11
    try:
        p.refresh_data.list_pull_operations(request={"company_id": COMPANY, "page": 1, "page_size": 100, "query": "isCompleted=true"})
        raise AssertionError("no error")
    except perrors.ErrorMessage as e:
        assert e.data.status_code == 400


print(f"codat-commerce {importlib.metadata.version('codat-commerce')} + codat-platform {importlib.metadata.version('codat-platform')}: {len(passed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
