"""Fixtures of the console tests: a real `basalt server` and, for the browser
tests, headless Chromium driven through chromedriver (Debian's packages)."""

import os
import shutil
import tempfile

import pytest

from console_harness import ARTIFACTS, client_for, start_server, stop_server

CHROMIUM = os.environ.get("BASALT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BASALT_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture
def server():
    s = start_server()
    yield s
    stop_server(s)


@pytest.fixture
def s3(server):
    return client_for(server.endpoint)


@pytest.fixture
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def downloads():
    d = tempfile.mkdtemp(prefix="basalt-console-downloads-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def browser(downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # CI runs as root, where Chromium's sandbox cannot start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": downloads,
        "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
