"""The archive search page in a real browser: log in, search by serial, open a PDF, be denied."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import select

from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import AccessLogEntry
from tests.support.browser import chromium
from tests.support.web import serving


@pytest.fixture
def site(archive: Archive, user, make_pdf) -> Iterator[tuple[str, dict[str, str]]]:
    serials = {}
    for cm in ("cm1", "cm2"):
        spec = DocumentSpec(branch="SZ01", doc_type="EXT", subject=f"{cm} 的客户签字确认书",
                            subject_key=f"web-test:{cm}", cm_id=cm)
        serials[cm] = archive.put(make_pdf(f"{cm} 的客户签字确认书"), spec,
                                  actor=user("cc1")).serial
    with serving(archive) as base:
        yield base, serials


def _shown(driver, element_id: str) -> WebElement:  # type: ignore[no-untyped-def]
    """The element ``element_id`` once the page that has it is loaded (clicks don't wait)."""
    element: WebElement = WebDriverWait(driver, 30).until(
        ec.visibility_of_element_located((By.ID, element_id)))
    return element


def _login(driver, base: str, user: str, secret: str) -> None:  # type: ignore[no-untyped-def]
    """Log in and wait for the page the click leads to (signed in, or the refusal)."""
    driver.get(base + "/login")
    _shown(driver, "user_id").send_keys(user)
    driver.find_element(By.ID, "secret").send_keys(secret)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "who")
                                    or d.find_elements(By.ID, "error"))


@pytest.mark.slow
def test_login_search_open_and_denied_read_in_a_browser(
    site: tuple[str, dict[str, str]], archive: Archive, tmp_path: Path
) -> None:
    base, serials = site
    with chromium() as driver:
        _login(driver, base, "cm1", "wrong")
        assert "wrong secret" in _shown(driver, "error").text
        _login(driver, base, "cm1", "pw-cm1")
        assert "cm1" in _shown(driver, "who").text
        driver.find_element(By.ID, "serial").send_keys(serials["cm1"])
        driver.find_element(By.ID, "go").click()
        _shown(driver, "count")
        links = driver.find_elements(By.CSS_SELECTOR, "#results a.open")
        assert [a.text for a in links] == [serials["cm1"]]
        driver.save_screenshot(str(tmp_path / "search.png"))
        # a prefix search shows only what this CM may see
        driver.get(base + "/search?serial=SZ01-EXT")
        assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#results a.open")] == [
            serials["cm1"]]
        # open the PDF: fetched with the browser's own session cookie
        href = driver.find_element(By.CSS_SELECTOR, "#results a.open").get_attribute("href")
        cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
        request = urllib.request.Request(str(href), headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
        with urllib.request.urlopen(request) as response:
            body = response.read()
            assert response.headers["Content-Type"] == "application/pdf"
        assert body.startswith(b"%PDF-")
        _, stored = archive.get(serials["cm1"], actor=archive.authenticate("bm1", "pw-bm1"))
        assert body == stored
        # another CM's document: denied and logged
        driver.get(f"{base}/documents/{serials['cm2']}.pdf")
        assert "may not read" in _shown(driver, "message").text
        # the branch manager sees both
        driver.find_element(By.CSS_SELECTOR, "header button").click()
        _shown(driver, "user_id")
        _login(driver, base, "bm1", "pw-bm1")
        driver.get(base + "/search?serial=SZ01-EXT")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#results a.open")) == 2
    with new_session(archive.engine) as session:
        denied = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.allowed == False)).all()  # noqa: E712
    assert ("cm1", "read", serials["cm2"]) in {(e.user_id, e.action, e.target) for e in denied}
    assert ("cm1", "authenticate") in {(e.user_id, e.action) for e in denied}


def test_pages_need_a_login(site: tuple[str, dict[str, str]]) -> None:
    base, serials = site
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{base}/documents/{serials['cm1']}.pdf") as response:
        assert urlparse(response.url).path == "/login"  # and back to the document after it
        assert f"next=/documents/{serials['cm1']}.pdf" in response.url
