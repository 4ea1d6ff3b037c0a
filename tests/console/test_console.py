"""The console end to end in headless Chromium against a real basalt on
loopback: wrong keys, login, buckets, folders, uploads (one over 64 MiB, as a
multipart upload) checked byte for byte with boto3, browsing, pagination,
download, share link, delete, escaping of hostile key names, the live cluster
page, and logout. Screenshots land in tests/artifacts/."""

import os
import shutil
import time
import urllib.request

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from console_harness import ACCESS_KEY, SECRET_KEY, artifacts, browser, downloads, s3, server  # noqa: F401 (fixtures)

MiB = 1 << 20
SMALL_BYTES = 1 * MiB + 7
# Over 64 MiB: the page sends it as a multipart upload of 16 MiB parts.
BIG_BYTES = 64 * MiB + 123
UPLOAD_TIMEOUT_S = 300


def wait(driver, cond, timeout=15, what="condition"):
    # The page re-renders tables as data arrives: an element seen a moment ago may be gone.
    w = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    return w.until(lambda d: cond(d), message=what)


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def read_exact(stream, n):
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def same_bytes(path, stream):
    """Compares a file with a stream, byte for byte, a MiB at a time."""
    with open(path, "rb") as f:
        while True:
            a = f.read(MiB)
            if not a:
                return stream.read(1) == b""
            if read_exact(stream, len(a)) != a:
                return False


def row_key_cells(driver):
    return {r.get_attribute("data-key"): r for r in css(driver, "#object-table tbody tr")}


def in_row(driver, key, selector):
    """An element of the row of `key`, looked up now (rows are re-rendered)."""
    return wait(driver, lambda d: row_key_cells(d)[key].find_element(By.CSS_SELECTOR, selector), what=f"{key} {selector}")


def api_status(driver, path):
    """The status the page's own fetch of a console API path gets."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(String(e)));",
        path,
    )


def login(driver, secret):
    driver.find_element(By.ID, "access-key").clear()
    driver.find_element(By.ID, "access-key").send_keys(ACCESS_KEY)
    driver.find_element(By.ID, "secret-key").clear()
    driver.find_element(By.ID, "secret-key").send_keys(secret)
    driver.find_element(By.ID, "login-button").click()


def test_console_end_to_end(server, s3, browser, downloads, artifacts, tmp_path):
    d = browser
    base = server.endpoint

    # A browser at the server's address lands on the login page.
    d.get(base + "/")
    wait(d, lambda d: d.current_url.endswith("/console/login") and css(d, "#login-form"), what="login page")
    d.save_screenshot(os.path.join(artifacts, "console-login.png"))

    # Wrong keys: a clear message, no session.
    login(d, "not-the-secret")
    wait(d, lambda d: d.find_element(By.ID, "login-error").is_displayed(), what="login error")
    assert d.find_element(By.ID, "login-error").text == "Invalid access key or secret key."
    assert d.current_url.endswith("/console/login")
    assert d.get_cookie("basalt_console") is None
    assert d.find_element(By.ID, "secret-key").get_attribute("value") == ""

    login(d, SECRET_KEY)
    wait(d, lambda d: d.current_url.endswith("/console/") and d.find_element(By.ID, "view-buckets").is_displayed(),
         what="bucket page")
    assert d.find_element(By.ID, "user-name").text == ACCESS_KEY
    cookie = d.get_cookie("basalt_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert d.execute_script("return document.cookie") == ""

    # Create a bucket (an invalid name is refused in the page first).
    d.find_element(By.ID, "bucket-name").send_keys("Not_Valid")
    d.find_element(By.ID, "create-bucket-button").click()
    wait(d, lambda d: d.find_element(By.ID, "error-banner").is_displayed(), what="name error")
    assert "not a valid bucket name" in d.find_element(By.ID, "error-banner").text
    d.find_element(By.ID, "bucket-name").clear()
    d.find_element(By.ID, "bucket-name").send_keys("e2e-photos")
    d.find_element(By.ID, "create-bucket-button").click()
    wait(d, lambda d: css(d, 'tr[data-bucket="e2e-photos"]'), what="bucket row")
    assert "e2e-photos" in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # Into the bucket; a new folder.
    css(d, 'tr[data-bucket="e2e-photos"] th a')[0].click()
    wait(d, lambda d: d.find_element(By.ID, "view-objects").is_displayed(), what="object page")
    d.find_element(By.ID, "new-folder").click()
    d.find_element(By.ID, "folder-name").send_keys("docs")
    d.find_element(By.ID, "folder-ok").click()
    wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "#crumbs li:last-child").text == "docs", what="into docs/")
    assert s3.head_object(Bucket="e2e-photos", Key="docs/")["ContentLength"] == 0

    # Upload two files through the file picker, one of them over 64 MiB.
    small = random_file(str(tmp_path / "small.bin"), SMALL_BYTES)
    big = random_file(str(tmp_path / "big.bin"), BIG_BYTES)
    d.find_element(By.ID, "file-input").send_keys(small + "\n" + big)
    wait(d, lambda d: len(css(d, "#uploads li.done")) == 2 or css(d, "#uploads li.failed"),
         timeout=UPLOAD_TIMEOUT_S, what="uploads")
    assert not css(d, "#uploads li.failed"), d.find_element(By.ID, "uploads").text
    for name, path in [("small.bin", small), ("big.bin", big)]:
        obj = s3.get_object(Bucket="e2e-photos", Key=f"docs/{name}")
        assert obj["ContentLength"] == os.path.getsize(path)
        assert same_bytes(path, obj["Body"]), name
    # The big one went up in parts.
    assert "-" in s3.head_object(Bucket="e2e-photos", Key="docs/big.bin")["ETag"]
    wait(d, lambda d: {"docs/small.bin", "docs/big.bin"} <= set(row_key_cells(d)), what="uploaded rows")

    # Drag and drop: a file dropped on the page is uploaded to the folder shown.
    d.execute_script(
        "const dt = new DataTransfer();"
        "dt.items.add(new File(['dropped by drag and drop'], 'dropped.txt', {type: 'text/plain'}));"
        "document.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));"
        "document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));")
    wait(d, lambda d: len(css(d, "#uploads li.done")) == 3, what="dropped upload")
    dropped = s3.get_object(Bucket="e2e-photos", Key="docs/dropped.txt")
    assert (dropped["Body"].read(), dropped["ContentType"]) == (b"dropped by drag and drop", "text/plain")
    s3.delete_object(Bucket="e2e-photos", Key="docs/dropped.txt")
    wait(d, lambda d: d.find_element(By.ID, "clear-uploads").is_displayed(), what="clear button")
    d.find_element(By.ID, "clear-uploads").click()
    assert not css(d, "#uploads li")

    # Browse: back to the bucket's root, then into the prefix again.
    css(d, "#crumbs li:nth-child(2) a")[0].click()
    wait(d, lambda d: "docs/" in row_key_cells(d) and "docs/small.bin" not in row_key_cells(d), what="bucket root")
    in_row(d, "docs/", "th a").click()
    wait(d, lambda d: "docs/big.bin" in row_key_cells(d), what="docs/ again")
    assert in_row(d, "docs/big.bin", "td:nth-of-type(2)").text == "64 MiB"
    d.save_screenshot(os.path.join(artifacts, "console-bucket.png"))

    # Download one and compare.
    in_row(d, "docs/small.bin", "a[download]").click()
    target = os.path.join(downloads, "small.bin")
    wait(d, lambda d: os.path.exists(target) and os.path.getsize(target) == SMALL_BYTES, timeout=60, what="download")
    with open(target, "rb") as f:
        assert same_bytes(small, f)

    # Details and a share link that works without a session.
    in_row(d, "docs/small.bin", "th button").click()
    wait(d, lambda d: d.find_element(By.ID, "details-dialog").is_displayed(), what="details")
    assert "docs/small.bin" in d.find_element(By.ID, "details-list").text
    d.find_element(By.ID, "share-create").click()
    wait(d, lambda d: d.find_element(By.ID, "share-url").get_attribute("value"), what="share link")
    url = d.find_element(By.ID, "share-url").get_attribute("value")
    assert url.startswith(base + "/e2e-photos/docs/small.bin?") and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url) as resp:
        assert same_bytes(small, resp)
    d.find_element(By.ID, "details-close").click()

    # Delete a selected object, after confirming.
    d.find_element(By.CSS_SELECTOR, 'input[data-select="docs/small.bin"]').click()
    d.find_element(By.ID, "delete-selected").click()
    wait(d, lambda d: d.find_element(By.ID, "confirm-dialog").is_displayed(), what="confirmation")
    d.find_element(By.ID, "confirm-ok").click()
    wait(d, lambda d: "docs/small.bin" not in row_key_cells(d) and "docs/big.bin" in row_key_cells(d), what="deleted")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="e2e-photos", Prefix="docs/")["Contents"]]
    assert keys == ["docs/", "docs/big.bin"]

    # Hostile key names are shown as text, never run.
    hostile = 'xss/<img src=x onerror="window.__pwned=1">.txt'
    s3.put_object(Bucket="e2e-photos", Key=hostile, Body=b"<script>window.__pwned=2</script>", ContentType="text/html")
    d.get(base + "/console/#/b/e2e-photos/xss%2F")
    wait(d, lambda d: hostile in row_key_cells(d), what="hostile row")
    assert in_row(d, hostile, "th").text == hostile[len("xss/"):]
    assert not css(d, "#object-table img")
    assert d.execute_script("return window.__pwned") is None

    # Pagination of a folder with more than a page of entries.
    for i in range(120):
        s3.put_object(Bucket="e2e-photos", Key=f"many/{i:03d}", Body=b"x")
    d.get(base + "/console/#/b/e2e-photos/many%2F")
    wait(d, lambda d: len(row_key_cells(d)) == 100 and "many/000" in row_key_cells(d), what="page 1")
    d.find_element(By.ID, "next-page").click()
    wait(d, lambda d: len(row_key_cells(d)) == 20 and "many/119" in row_key_cells(d), what="page 2")
    assert d.find_element(By.ID, "page-info").text == "Page 2"
    d.find_element(By.ID, "prev-page").click()
    wait(d, lambda d: "many/000" in row_key_cells(d), what="page 1 again")

    # The bucket list counts what is cheap to count.
    d.get(base + "/console/#/buckets")
    wait(d, lambda d: css(d, 'tr[data-bucket="e2e-photos"] td') and
         css(d, 'tr[data-bucket="e2e-photos"] td')[0].text == "123", what="counts")
    d.save_screenshot(os.path.join(artifacts, "console-buckets.png"))

    # The cluster page updates without a reload when a drive goes away.
    d.get(base + "/console/#/cluster")
    wait(d, lambda d: "4 of 4" in d.find_element(By.ID, "cluster-summary").text, what="cluster page")
    d.execute_script("window.__same_page = true")
    shutil.move(server.drives[3], server.drives[3] + ".gone")
    try:
        wait(d, lambda d: "3 of 4" in d.find_element(By.ID, "cluster-summary").text, timeout=15, what="drive offline")
        assert d.execute_script("return window.__same_page") is True
        assert "Degraded" in d.find_element(By.ID, "cluster-summary").text
        d.save_screenshot(os.path.join(artifacts, "console-cluster.png"))
    finally:
        shutil.move(server.drives[3] + ".gone", server.drives[3])

    # Deleting a bucket that is not empty says why.
    d.get(base + "/console/#/buckets")
    wait(d, lambda d: css(d, 'tr[data-bucket="e2e-photos"] button'), what="bucket list")
    css(d, 'tr[data-bucket="e2e-photos"] button')[0].click()
    d.find_element(By.ID, "confirm-ok").click()
    wait(d, lambda d: "not empty" in d.find_element(By.ID, "error-banner").text, what="not empty")

    # Usable on a narrow screen: the page never scrolls sideways.
    d.set_window_size(390, 844)
    d.get(base + "/console/#/b/e2e-photos/docs%2F")
    wait(d, lambda d: "docs/big.bin" in row_key_cells(d), what="narrow object page")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert in_row(d, "docs/big.bin", "a[download]").is_displayed()
    d.save_screenshot(os.path.join(artifacts, "console-narrow.png"))
    d.set_window_size(1280, 900)

    # No script error anywhere along the way.
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and e.get("source") == "javascript"]
    assert not errors, errors

    # Logout: back to the login page, and nothing behind it is reachable.
    d.find_element(By.ID, "logout").click()
    wait(d, lambda d: "/console/login" in d.current_url, what="logged out")
    wait(d, lambda d: d.find_element(By.ID, "login-info").text == "You have logged out.", what="logout message")
    assert d.get_cookie("basalt_console") is None
    d.get(base + "/console/#/b/e2e-photos/docs%2F")
    wait(d, lambda d: d.current_url.startswith(base + "/console/login"), what="app page refused")
    for path in ["/console/api/buckets", "/console/api/session", "/console/api/s3/e2e-photos/docs/big.bin"]:
        assert api_status(d, path) == 401, path


@pytest.mark.skipif(not os.environ.get("BASALT_CONSOLE_GIB"), reason="set BASALT_CONSOLE_GIB=1 to upload 1 GiB")
def test_one_gib_upload(server, s3, browser, tmp_path):
    """A 1 GiB file through the browser (slow in debug builds; opt-in)."""
    d = browser
    s3.create_bucket(Bucket="gib")
    big = random_file(str(tmp_path / "one.gib"), 1 << 30)
    d.get(server.endpoint + "/console/login")
    login(d, SECRET_KEY)
    wait(d, lambda d: d.current_url.endswith("/console/"), what="login")
    d.get(server.endpoint + "/console/#/b/gib/")
    wait(d, lambda d: d.find_element(By.ID, "view-objects").is_displayed(), what="bucket")
    started = time.time()
    d.find_element(By.ID, "file-input").send_keys(big)
    wait(d, lambda d: css(d, "#uploads li.done") or css(d, "#uploads li.failed"), timeout=1800, what="1 GiB upload")
    assert not css(d, "#uploads li.failed"), d.find_element(By.ID, "uploads").text
    print(f"1 GiB uploaded in {time.time() - started:.1f}s")
    obj = s3.get_object(Bucket="gib", Key="one.gib")
    assert obj["ContentLength"] == 1 << 30 and same_bytes(big, obj["Body"])
