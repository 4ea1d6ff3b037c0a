"""What the console tests share: the real-server harness of tests/clients (loaded
under its own module name), fixtures (a server, boto3, headless Chromium driven
through chromedriver from Debian's packages), and small HTTP helpers that speak
to the console API like a browser would.

There is deliberately no conftest.py here: tests/clients import names from
`conftest`, and a second conftest module would shadow theirs when pytest runs
both folders. Test modules import the fixtures they use from this file."""

import http.client
import importlib.util
import json
import os
import shutil
import tempfile
import urllib.parse

import pytest

_CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients", "conftest.py")
_spec = importlib.util.spec_from_file_location("basalt_client_harness", _CLIENTS)
clients = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clients)

Server = clients.Server
ACCESS_KEY = clients.ACCESS_KEY
SECRET_KEY = clients.SECRET_KEY
client_for = clients.client_for
free_port = clients.free_port
ROOT = clients.ROOT
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def start_server(env=None, **kwargs):
    """A started server; `env` adds environment variables for it alone."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    server = Server(**kwargs)
    try:
        return server.start()
    except RuntimeError:
        # A server that did not come up must not outlive the test.
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_server(server):
    """Stops the server (it must exit 0) and removes its directory either way."""
    try:
        server.stop()
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lower-case name, value)
        self.body = body

    def header(self, name):
        return next((v for n, v in self.headers if n == name.lower()), None)

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def json(self):
        return json.loads(self.body)


def call(port, method, path, body=None, headers=None, cookie=None, csrf=None):
    """One request on a fresh connection (urllib would follow redirects)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-Basalt-CSRF"] = csrf
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Response(r.status, [(n.lower(), v) for n, v in r.getheaders()], r.read())
    finally:
        conn.close()


def login(port, access=ACCESS_KEY, secret=SECRET_KEY):
    """Logs in; returns (response, cookie header value or None, csrf token or None)."""
    r = call(port, "POST", "/console/api/login", {"accessKey": access, "secretKey": secret})
    cookie = None
    for value in r.all("set-cookie"):
        first = value.split(";", 1)[0]
        if first.startswith("basalt_console="):
            cookie = first
    csrf = r.json().get("csrf") if r.status == 200 else None
    return r, cookie, csrf


def quote_key(key):
    return urllib.parse.quote(key, safe="/")


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
