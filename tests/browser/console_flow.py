"""Drives the operator console and the Link pages in headless Chromium, as an operator and a
merchant would, and runs axe-core on every page (no serious or critical violation allowed).

Environment (set by apps/api/tests/console_browser.rs): BASE, API_KEY, SECOND_KEY, SECOND_KEY_ID,
COMPANY_ID, ACCOUNT_ID, HOSTILE_COMPANY_ID, BRAND, SHOTS (screenshot directory), AXE_JS (axe.min.js),
CHROMIUM, CHROMEDRIVER. Exits non-zero with the failed check on stderr.
"""

import base64
import json
import os
import re
import tempfile
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["BASE"]
KEY = os.environ["API_KEY"]
COMPANY = os.environ["COMPANY_ID"]
SHOTS = os.environ["SHOTS"]
AXE = open(os.environ["AXE_JS"], encoding="utf-8").read()
os.makedirs(SHOTS, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for flag in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1400", f"--user-data-dir={tempfile.mkdtemp()}",
]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
driver.set_script_timeout(60)
wait = WebDriverWait(driver, 20)
checked = []


def api(method, path, body=None):
    """The Codat-style API, to check what the console did."""
    req = urllib.request.Request(BASE + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(KEY.encode()).decode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as res:
        text = res.read().decode()
        return json.loads(text) if text else None


def text():
    return driver.find_element(By.TAG_NAME, "body").text


def go(path):
    driver.get(BASE + path)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def axe(name):
    """axe-core on the current page: no serious or critical violation."""
    driver.execute_script(AXE)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))"
        ".catch(e => done({error: String(e)}));"
    )
    assert isinstance(result, list), f"axe failed on {name}: {result}"
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"accessibility violations on {name}: {json.dumps(bad, indent=1)}"
    checked.append(name)


def page(name, path=None):
    if path is not None:
        go(path)
    shot(name)
    axe(name)


def click(xpath):
    """Clicks what loads a new page, and waits for it (the old document goes stale)."""
    loads(driver.find_element(By.XPATH, xpath))


def loads(element):
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_):
        # Chromium reports a node of a replaced document either as stale or as "does not belong
        # to the document": both mean the new page is there.
        try:
            return EC.staleness_of(old)(driver)
        except WebDriverException:
            return True

    wait.until(replaced)


def in_all(table_text):
    m = re.search(r"(\d+) in all", table_text)
    assert m, table_text
    return int(m.group(1))


def no_alert():
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


try:
    # First, that the check can fail here: a page with an unlabelled field and an image without
    # alternative text has serious violations.
    driver.get("data:text/html,<!doctype html><html><body><input><img src='x.png'></body></html>")
    try:
        axe("self-test")
    except AssertionError as e:
        assert "image-alt" in str(e) and "label" in str(e), e
    else:
        raise AssertionError("axe found nothing on a page built to fail")
    checked.remove("self-test") if "self-test" in checked else None

    # Without a session every page leads to sign-in, which comes back to the page asked for.
    go(f"/console/companies/{COMPANY}")
    assert "/console/sign-in?next=" in driver.current_url, driver.current_url
    page("sign-in")
    driver.find_element(By.ID, "api-key").send_keys("not-a-valid-key")
    click("//button[.='Sign in']")
    assert "That API key is not valid." in text()
    driver.find_element(By.ID, "api-key").send_keys(KEY)
    click("//button[.='Sign in']")
    wait.until(lambda d: d.current_url.endswith(f"/console/companies/{COMPANY}"))
    assert "Synced Shop" in driver.find_element(By.TAG_NAME, "h1").text

    # Overview: the linked merchant, its pulls, the records chart.
    page("overview", "/console")
    cards = {c.find_element(By.TAG_NAME, "h2").text: c.text for c in driver.find_elements(By.CSS_SELECTOR, "section.card")}
    assert re.search(r"Linked\s+1\b", cards["Connections by status"]), cards
    assert re.search(r"Complete\s+\d+", cards["Pulls, last 24 hours"]), cards
    bars = driver.find_elements(By.CSS_SELECTOR, "figure.chart svg g.bars rect")
    assert bars, "the chart shows the records just synced"
    caption = driver.find_element(By.CSS_SELECTOR, "figure.chart figcaption").text
    assert int(caption.split()[0]) > 0, caption

    # Companies: list and search.
    page("companies", "/console/companies")
    assert "Synced Shop" in driver.find_element(By.ID, "companies").text
    query = driver.find_element(By.ID, "q")
    query.send_keys("name~synced")
    click("//button[.='Search']")
    rows = driver.find_elements(By.CSS_SELECTOR, "#companies tbody tr")
    assert len(rows) == 1 and "Synced Shop" in rows[0].text, [r.text for r in rows]
    query = driver.find_element(By.ID, "q")
    query.clear()
    query.send_keys("name=")
    click("//button[.='Search']")
    assert driver.find_element(By.CSS_SELECTOR, "[role=alert]").text, "a malformed query says why"

    # The company page: its connection, data status, pull history.
    page("company", f"/console/companies/{COMPANY}")
    connections = driver.find_element(By.ID, "connections").text
    assert "Linked" in connections and os.environ["ACCOUNT_ID"] in connections, connections
    status = driver.find_element(By.CSS_SELECTOR, "#data-status tr[data-type='commerce-customers']").text
    assert "Complete" in status, status
    before = in_all(text())

    # Refresh one data type: a new pull appears in the history.
    loads(driver.find_element(By.CSS_SELECTOR, "#data-status tr[data-type='commerce-payments'] button"))
    wait.until(lambda d: "done=queued" in d.current_url)
    assert "Queued" in driver.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert in_all(text()) == before + 1, (before, text())
    first = driver.find_element(By.CSS_SELECTOR, "#pulls-table tbody tr").text
    assert "commerce-payments" in first, first
    driver.find_element(By.ID, "pulls").send_keys("dataType=commerce-payments")
    click("//button[.='Filter']")
    rows = driver.find_elements(By.CSS_SELECTOR, "#pulls-table tbody tr")
    assert rows and all("commerce-payments" in r.text for r in rows), [r.text for r in rows]
    shot("company-after-refresh")

    # Data browser: a query, an order, a record's JSON.
    go(f"/console/companies/{COMPANY}")
    loads(driver.find_element(By.CSS_SELECTOR, "#data-status tr[data-type='commerce-customers'] a"))
    wait.until(lambda d: "/data/commerce-customers" in d.current_url)
    page("data-browser")
    total = in_all(text())
    want = api("GET", f"/companies/{COMPANY}/connections/{os.environ['CONNECTION_ID']}/data/commerce-customers?pageSize=1")["totalResults"]
    assert total == want, (total, want)
    first_id = driver.find_element(By.CSS_SELECTOR, "#records tbody tr td code").text
    driver.find_element(By.ID, "query").send_keys(f"id={first_id}")
    driver.find_element(By.ID, "orderBy").send_keys("-createdDate")
    click("//button[.='Run']")
    rows = driver.find_elements(By.CSS_SELECTOR, "#records tbody tr")
    assert len(rows) == 1 and first_id in rows[0].text and in_all(text()) == 1, [r.text for r in rows]
    shot("data-browser-query")
    loads(rows[0].find_element(By.TAG_NAME, "a"))
    record = json.loads(driver.find_element(By.ID, "record-json").text)
    assert record["id"] == first_id, record
    page("record")
    go(f"/console/companies/{COMPANY}/connections/{os.environ['CONNECTION_ID']}/data/commerce-customers?query=nonsense%3D1")
    assert "Could not resolve property nonsense" in driver.find_element(By.ID, "query-error").text

    # Webhooks: create a consumer (its secret shown once), then delete it.
    page("webhooks", "/console/webhooks")
    assert "company.created" in driver.find_element(By.ID, "events").text, "the recent events"
    driver.find_element(By.ID, "url").send_keys("https://hooks.example.com/tributary")
    click("//button[.='Add consumer']")
    secret = driver.find_element(By.ID, "once").get_attribute("value")
    assert secret.startswith("whsec_"), secret
    shot("webhook-created")
    assert [c["url"] for c in api("GET", "/webhooks")["results"]] == ["https://hooks.example.com/tributary"]
    loads(driver.find_element(By.LINK_TEXT, "https://hooks.example.com/tributary"))
    page("webhook-consumer")
    click("//button[.='Disable']")
    assert "Disabled" in driver.find_element(By.TAG_NAME, "main").text
    click("//a[.='Delete…']")
    page("webhook-delete-confirm")
    click("//button[.='Delete consumer']")
    wait.until(lambda d: "done=deleted" in d.current_url)
    assert "No consumer yet." in text()
    assert api("GET", "/webhooks")["results"] == []

    # Settings: no secret shown.
    page("settings", "/console/settings")
    assert "sk_test_" not in driver.page_source and "(set)" in text()

    # A form without the CSRF token is refused and changes nothing.
    driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/companies';"
        "const i = document.createElement('input'); i.name = 'name'; i.value = 'Forged Co'; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();"
    )
    wait.until(lambda d: "Request refused" in d.find_element(By.TAG_NAME, "h1").text)
    shot("csrf-refused")
    assert api("GET", "/companies?query=" + urllib.parse.quote("name=Forged Co"))["totalResults"] == 0

    # Client-supplied markup is shown as text, never run.
    go(f"/console/companies/{os.environ['HOSTILE_COMPANY_ID']}")
    assert no_alert() and "<script>alert(1)</script>" in text(), text()
    go("/console/companies")
    assert no_alert()
    go(f"/link/{os.environ['HOSTILE_COMPANY_ID']}")
    assert no_alert()

    # Sign out; then a second key's session ends when that key is deleted.
    go("/console")
    click("//button[.='Sign out']")
    wait.until(lambda d: "/console/sign-in" in d.current_url)
    go("/console/webhooks")
    assert "/console/sign-in" in driver.current_url, driver.current_url
    driver.find_element(By.ID, "api-key").send_keys(os.environ["SECOND_KEY"])
    click("//button[.='Sign in']")
    wait.until(lambda d: d.current_url.endswith("/console/webhooks"))
    api("DELETE", f"/apiKeys/{os.environ['SECOND_KEY_ID']}")
    driver.refresh()
    assert "/console/sign-in" in driver.current_url, "a deleted key's session stops working"

    # The Link pages a merchant sees: branded, what is read, the connection's state.
    page("link", f"/link/{COMPANY}")
    body = text()
    brand = os.environ["BRAND"]
    assert brand in driver.find_element(By.CSS_SELECTOR, "header.brand").text, body
    for words in ["Read-only access", "Customers", "Payments and refunds", "Linked", "Connect Stripe Test"]:
        assert words in body, (words, body)
    page("link-done", f"/link/{COMPANY}/done?statusCode=200")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Connected"
    page("link-denied", f"/link/{COMPANY}/done?statusCode=403")
    assert "You cancelled" in text()
    page("link-bad-state", "/oauth/stripe/callback?state=forged&code=x")
    assert "Open the link you were sent again" in text()
    # A 360 px phone: nothing wider than the screen.
    driver.set_window_size(360, 740)
    go(f"/link/{COMPANY}")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 360, f"the Link page is {width}px wide on a 360px screen"
    page("link-phone")
    driver.set_window_size(1280, 1400)
    print("checked with axe: " + ", ".join(checked))
    print("ok")
finally:
    driver.quit()
