"""Drives the hosted Link flow in headless Chromium: the company's Link page served by
tributary-api, then the stripe-sandbox consent page, then back to Tributary.

Usage: link_flow.py authorize|deny
Environment: LINK_URL (the company's redirect), SANDBOX_ACCOUNT (the account to pick),
CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default /usr/bin/chromedriver).
Prints the final URL on the last line.
"""

import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

decision = sys.argv[1]
options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for flag in [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--user-data-dir={tempfile.mkdtemp()}",
]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
try:
    wait = WebDriverWait(driver, 20)
    driver.get(os.environ["LINK_URL"])
    assert driver.title.startswith("Connect "), driver.title
    driver.find_element(By.XPATH, "//button[contains(., 'Connect Stripe Test')]").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//button[@value='authorize']")))
    assert "would like to connect" in driver.page_source
    account = os.environ["SANDBOX_ACCOUNT"]
    driver.find_element(By.CSS_SELECTOR, f"input[name='account'][value='{account}']").click()
    driver.find_element(By.XPATH, f"//button[@value='{decision}']").click()
    # The consent page's own URL carries redirect_uri, so wait for Tributary's page itself, and
    # read its heading only once the new document is there (no stale element mid-navigation).
    wait.until(lambda d: "/link/" in d.current_url and "/done" in d.current_url)

    def done_heading(d):
        try:
            text = d.find_element(By.TAG_NAME, "h1").text
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return text if text in ("Connected", "Not connected") else False

    heading = wait.until(done_heading)
    print(f"heading: {heading}")
    if decision == "authorize":
        assert heading == "Connected", heading
    else:
        assert heading == "Not connected", heading
    print(driver.current_url)
finally:
    driver.quit()
