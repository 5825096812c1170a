"""Headless Chromium from Debian's packages, driven by Selenium (no driver downloads)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(download_dir: str | None = None) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="brokerflow-chromium-")
    # --disable-3d-apis: without a GPU, WebGL (the Prefect run page's timeline graph) falls back
    # to software rendering and keeps both cores busy; the pages work without it.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-3d-apis",
                 "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if download_dir:
        options.add_experimental_option("prefs", {
            "download.default_directory": download_dir,
            "plugins.always_open_pdf_externally": True})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
