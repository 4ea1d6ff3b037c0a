"""The console's HTTP surface without a browser: sessions (401 without one,
expiry, logout), CSRF, login throttling, security headers, the browser redirect
that leaves S3 clients alone, share links, pagination, and --console-address."""

import hashlib
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from console_harness import (  # noqa: F401 (s3 and server are fixtures)
    ACCESS_KEY,
    SECRET_KEY,
    call,
    client_for,
    free_port,
    login,
    quote_key,
    s3,
    server,
    start_server,
    stop_server,
)

API_GETS = ["session", "buckets", "objects?bucket=b", "object?bucket=b&key=k", "cluster", "s3/", "s3/b/k"]


def test_every_call_needs_a_session(server):
    for path in API_GETS:
        r = call(server.port, "GET", f"/console/api/{path}")
        assert r.status == 401, path
        assert r.json()["code"] == "Unauthorized"
    for method, path in [("POST", "logout"), ("POST", "share"), ("PUT", "s3/b"), ("DELETE", "s3/b/k"), ("POST", "s3/b?delete")]:
        assert call(server.port, method, f"/console/api/{path}", b"").status == 401, path
    # A forged or garbled cookie is no session either.
    for cookie in ["basalt_console=", "basalt_console=abc.def", "basalt_console=" + "A" * 600]:
        assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 401
    # The app page sends a browser without a session to the login page.
    r = call(server.port, "GET", "/console/")
    assert (r.status, r.header("location")) == (302, "/console/login")


def test_login_wrong_keys_and_cookie(server):
    wrong_secret, cookie, _ = login(server.port, secret="not-the-secret")
    wrong_user, _, _ = login(server.port, access="someoneelse")
    assert cookie is None and wrong_secret.status == wrong_user.status == 401
    # No hint which of the two was wrong.
    assert wrong_secret.body == wrong_user.body
    assert wrong_secret.json()["message"] == "Invalid access key or secret key."
    r, cookie, csrf = login(server.port)
    assert r.status == 200 and cookie and csrf
    set_cookie = r.header("set-cookie")
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=43200"):
        assert attr in set_cookie, set_cookie
    # The secret is nowhere in what the browser keeps or sees.
    assert SECRET_KEY not in set_cookie and SECRET_KEY.encode() not in r.body
    s = call(server.port, "GET", "/console/api/session", cookie=cookie)
    assert s.status == 200 and s.json()["accessKey"] == ACCESS_KEY and s.json()["csrf"] == csrf
    # A login needs JSON: a cross-site HTML form cannot send it.
    form = call(server.port, "POST", "/console/api/login", f"accessKey={ACCESS_KEY}&secretKey={SECRET_KEY}".encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 400
    assert SECRET_KEY not in open(server.log).read()


def test_csrf_token_required_on_state_changes(server, s3):
    _, cookie, csrf = login(server.port)
    r = call(server.port, "PUT", "/console/api/s3/csrf-test", b"", cookie=cookie)
    assert r.status == 403 and "CSRF" in r.json()["message"]
    wrong = ("B" if csrf[0] == "A" else "A") + csrf[1:]
    r = call(server.port, "PUT", "/console/api/s3/csrf-test", b"", cookie=cookie, csrf=wrong)
    assert r.status == 403
    assert call(server.port, "POST", "/console/api/logout", b"", cookie=cookie).status == 403
    share = {"bucket": "csrf-test", "key": "k", "expiresSecs": 60}
    assert call(server.port, "POST", "/console/api/share", share, cookie=cookie).status == 403
    # Nothing happened; the session still works; with the token it goes through.
    assert "csrf-test" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 200
    assert call(server.port, "PUT", "/console/api/s3/csrf-test", b"", cookie=cookie, csrf=csrf).status == 200
    # Another session's token does not do.
    _, _, other_csrf = login(server.port)
    assert call(server.port, "DELETE", "/console/api/s3/csrf-test", cookie=cookie, csrf=other_csrf).status == 403
    # A request the browser marks cross-site is refused even with the token.
    r = call(server.port, "DELETE", "/console/api/s3/csrf-test", cookie=cookie, csrf=csrf,
             headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    assert call(server.port, "DELETE", "/console/api/s3/csrf-test", cookie=cookie, csrf=csrf).status == 204


def test_session_expires():
    server = start_server(env={"BASALT_CONSOLE_SESSION_TTL": "2"})
    try:
        r, cookie, _ = login(server.port)
        assert "Max-Age=2" in r.header("set-cookie")
        assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 200
        assert call(server.port, "GET", "/console/", cookie=cookie).status == 200
        time.sleep(2.5)
        assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 401
        assert call(server.port, "GET", "/console/api/buckets", cookie=cookie).status == 401
        r = call(server.port, "GET", "/console/", cookie=cookie)
        assert (r.status, r.header("location")) == (302, "/console/login")
    finally:
        stop_server(server)


def test_bad_session_ttl_is_refused_at_start():
    for bad in ["0", "soon", str(8 * 24 * 3600)]:
        try:
            server = start_server(env={"BASALT_CONSOLE_SESSION_TTL": bad})
        except RuntimeError as e:
            assert "BASALT_CONSOLE_SESSION_TTL" in str(e)
        else:
            stop_server(server)
            raise AssertionError(f"started with TTL {bad!r}")


def test_logout_ends_the_session(server):
    _, cookie, csrf = login(server.port)
    _, other_cookie, _ = login(server.port)
    r = call(server.port, "POST", "/console/api/logout", b"", cookie=cookie, csrf=csrf)
    assert r.status == 204 and "Max-Age=0" in r.header("set-cookie")
    # The old cookie is refused, on every core (each request opens a new connection).
    for _ in range(6):
        assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 401
    assert call(server.port, "GET", "/console/", cookie=cookie).status == 302
    assert call(server.port, "GET", "/console/api/session", cookie=other_cookie).status == 200


def test_failed_logins_are_slowed_down(server):
    for _ in range(3):
        r, _, _ = login(server.port, secret="wrong-guess")
        assert r.status == 401 and r.header("retry-after") is None
    r, _, _ = login(server.port, secret="wrong-guess")
    assert r.status == 401 and r.header("retry-after") == "1"
    # While the address must wait, even the right keys are not checked.
    r, cookie, _ = login(server.port)
    assert r.status == 429 and cookie is None and r.header("retry-after")
    time.sleep(1.1)
    r, _, _ = login(server.port, secret="wrong-guess")
    assert r.status == 401 and r.header("retry-after") == "2"
    time.sleep(2.1)
    r, cookie, _ = login(server.port)
    assert r.status == 200 and cookie
    # Success forgets the failures.
    r, _, _ = login(server.port, secret="wrong-guess")
    assert r.status == 401 and r.header("retry-after") is None


def test_browser_root_redirects_and_s3_is_unaffected(server, s3):
    html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = call(server.port, "GET", "/", headers={"Accept": html})
    assert (r.status, r.header("location")) == (302, "/console/")
    # An unsigned S3 request still gets S3's answer.
    r = call(server.port, "GET", "/")
    assert r.status == 403 and ET.fromstring(r.body).findtext("Code") == "AccessDenied"
    r = call(server.port, "GET", "/", headers={"Accept": "application/xml"})
    assert r.status == 403 and b"AccessDenied" in r.body
    # A signed request that asks for HTML is still S3's.
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    req = botocore.awsrequest.AWSRequest(method="GET", url=server.endpoint + "/",
                                         headers={"Accept": html, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    botocore.auth.SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    r = call(server.port, "GET", "/", headers=dict(req.prepare().headers))
    assert r.status == 200 and b"ListAllMyBucketsResult" in r.body
    # A bucket called "console" works for S3 clients.
    s3.create_bucket(Bucket="console")
    s3.put_object(Bucket="console", Key="login", Body=b"not a page")
    assert s3.get_object(Bucket="console", Key="login")["Body"].read() == b"not a page"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="console")["Contents"]] == ["login"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "console", "Key": "login"}, ExpiresIn=60)
    assert urllib.request.urlopen(url).read() == b"not a page"


def test_security_headers(server):
    _, cookie, _ = login(server.port)
    for path, c in [("/console/login", None), ("/console/", cookie), ("/console/api/session", cookie),
                    ("/console/assets/app.js", None)]:
        r = call(server.port, "GET", path, cookie=c)
        assert r.status == 200, path
        csp = r.header("content-security-policy")
        assert csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert r.header("x-frame-options") == "DENY"
        assert r.header("x-content-type-options") == "nosniff"
        assert r.header("referrer-policy") == "no-referrer"
    page = call(server.port, "GET", "/console/", cookie=cookie)
    assert page.header("cache-control") == "no-store"
    assert b"<script>" not in page.body and b" style=" not in page.body and b"onclick" not in page.body
    login_page = call(server.port, "GET", "/console/login")
    assert b'method="post"' in login_page.body
    # Scripts and styles are embedded files with validators.
    js = call(server.port, "GET", "/console/assets/app.js")
    assert js.header("content-type").startswith("text/javascript") and js.header("etag")
    assert call(server.port, "GET", "/console/assets/app.js", headers={"If-None-Match": js.header("etag")}).status == 304
    assert call(server.port, "GET", "/console/assets/../login").status == 404
    assert call(server.port, "GET", "/console/assets/nope.js").status == 404
    assert b"innerHTML" not in js.body


def test_objects_through_the_console_api(server, s3):
    s3.create_bucket(Bucket="api")
    html = b"<script>parent.stolen = document.cookie</script>"
    s3.put_object(Bucket="api", Key="dir/page.html", Body=html, ContentType="text/html",
                  Metadata={"owner": "ops"}, CacheControl="max-age=60")
    _, cookie, csrf = login(server.port)
    listing = call(server.port, "GET", "/console/api/objects?bucket=api", cookie=cookie).json()
    assert listing["folders"] == ["dir/"] and listing["objects"] == []
    listing = call(server.port, "GET", "/console/api/objects?bucket=api&prefix=dir%2F", cookie=cookie).json()
    [o] = listing["objects"]
    assert (o["key"], o["size"], o["contentType"]) == ("dir/page.html", len(html), "text/html")
    details = call(server.port, "GET", "/console/api/object?bucket=api&key=dir%2Fpage.html", cookie=cookie).json()
    assert details["metadata"] == {"owner": "ops"} and details["headers"]["cache-control"] == "max-age=60"
    # An object served through the console never renders as a page of the console.
    r = call(server.port, "GET", "/console/api/s3/api/dir/page.html", cookie=cookie)
    assert r.status == 200 and r.body == html
    assert r.header("content-disposition").startswith("attachment;")
    assert "sandbox" in r.header("content-security-policy")
    assert r.header("x-content-type-options") == "nosniff"
    # Ranges pass through.
    r = call(server.port, "GET", "/console/api/s3/api/dir/page.html", cookie=cookie, headers={"Range": "bytes=0-7"})
    assert (r.status, r.body) == (206, html[:8])
    # Errors of the S3 operations come back as S3 errors.
    r = call(server.port, "DELETE", "/console/api/s3/api", cookie=cookie, csrf=csrf)
    assert r.status == 409 and ET.fromstring(r.body).findtext("Code") == "BucketNotEmpty"
    r = call(server.port, "PUT", "/console/api/s3/Bad_Name", b"", cookie=cookie, csrf=csrf)
    assert r.status == 400 and ET.fromstring(r.body).findtext("Code") == "InvalidBucketName"
    r = call(server.port, "GET", "/console/api/objects?bucket=missing", cookie=cookie)
    assert r.status == 404 and r.json()["code"] == "NoSuchBucket"
    assert call(server.port, "GET", "/console/api/nothing", cookie=cookie).status == 404


def test_pagination_of_a_large_bucket(server, s3):
    s3.create_bucket(Bucket="many")
    # Keys written straight to the drives' listing: one PUT each, 2,100 of them.
    keys = [f"k{i:05d}" for i in range(2100)] + [f"sub/{i}" for i in range(3)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="many", Key=k, Body=b"x"), keys))
    _, cookie, _ = login(server.port)
    seen, folders, after, pages = [], [], "", 0
    while True:
        path = "/console/api/objects?bucket=many&max=1000" + (f"&after={quote_key(after)}" if after else "")
        page = call(server.port, "GET", path, cookie=cookie).json()
        pages += 1
        seen += [o["key"] for o in page["objects"]]
        folders += page["folders"]
        if not page["next"]:
            break
        after = page["next"]
    assert pages == 3 and seen == keys[:2100] and folders == ["sub/"]


def test_share_links(server, s3):
    s3.create_bucket(Bucket="share")
    body = bytes(range(256)) * 1000
    s3.put_object(Bucket="share", Key="reports/q 1.bin", Body=body)
    _, cookie, csrf = login(server.port)
    r = call(server.port, "POST", "/console/api/share", {"bucket": "share", "key": "reports/q 1.bin", "expiresSecs": 3600},
             cookie=cookie, csrf=csrf)
    assert r.status == 200
    url = r.json()["url"]
    assert url.startswith(server.endpoint + "/share/reports/q%201.bin?") and "X-Amz-Expires=3600" in url
    with urllib.request.urlopen(url) as resp:
        assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(body).digest()
        assert resp.headers["Content-Disposition"].startswith("attachment;")
    # A link that has expired is refused; a missing object gets no link.
    r = call(server.port, "POST", "/console/api/share", {"bucket": "share", "key": "reports/q 1.bin", "expiresSecs": 1},
             cookie=cookie, csrf=csrf)
    short = r.json()["url"]
    time.sleep(2.1)
    try:
        urllib.request.urlopen(short)
        raise AssertionError("an expired link worked")
    except urllib.error.HTTPError as e:
        assert e.code == 403
    r = call(server.port, "POST", "/console/api/share", {"bucket": "share", "key": "nope", "expiresSecs": 60},
             cookie=cookie, csrf=csrf)
    assert r.status == 404
    for bad in [0, 604801]:
        r = call(server.port, "POST", "/console/api/share", {"bucket": "share", "key": "reports/q 1.bin", "expiresSecs": bad},
                 cookie=cookie, csrf=csrf)
        assert r.status == 400


def test_cluster_snapshot(server):
    import shutil

    _, cookie, _ = login(server.port)
    c = call(server.port, "GET", "/console/api/cluster", cookie=cookie).json()
    assert (c["drivesOnline"], c["drivesTotal"], c["canRead"], c["canWrite"]) == (4, 4, True, True)
    [s] = c["sets"]
    assert (s["data"], s["parity"], s["readQuorum"], s["writeQuorum"], s["status"]) == (2, 2, 2, 3, "ok")
    assert [d["endpoint"] for d in s["drives"]] == server.drives and all(d["freeBytes"] > 0 for d in s["drives"])
    assert c["version"] and c["nodes"][0]["endpoint"] == f"127.0.0.1:{server.port}"
    # A drive that vanishes shows offline, and the set degraded.
    shutil.move(server.drives[3], server.drives[3] + ".gone")
    try:
        c = call(server.port, "GET", "/console/api/cluster", cookie=cookie).json()
        assert (c["drivesOnline"], c["sets"][0]["status"], c["canWrite"]) == (3, "degraded", True)
        assert c["sets"][0]["drives"][3]["online"] is False
    finally:
        shutil.move(server.drives[3] + ".gone", server.drives[3])


def test_console_address_serves_only_the_console():
    console_port = free_port()
    server = start_server(extra_args=["--console-address", f"127.0.0.1:{console_port}"])
    try:
        s3 = client_for(server.endpoint)
        s3.create_bucket(Bucket="side")
        s3.put_object(Bucket="side", Key="k", Body=b"side door")
        r = call(console_port, "GET", "/", headers={"Accept": "text/html"})
        assert (r.status, r.header("location")) == (302, "/console/")
        assert call(console_port, "GET", "/console/login").status == 200
        # Not S3: even a well-formed S3 path is not served there.
        assert call(console_port, "GET", "/side/k").status == 404
        _, cookie, csrf = login(console_port)
        assert cookie
        r = call(console_port, "GET", "/console/api/s3/side/k", cookie=cookie)
        assert r.body == b"side door"
        # A share link made there points at the S3 port.
        r = call(console_port, "POST", "/console/api/share", {"bucket": "side", "key": "k", "expiresSecs": 60},
                 cookie=cookie, csrf=csrf, headers={"Host": f"127.0.0.1:{console_port}"})
        url = r.json()["url"]
        assert url.startswith(server.endpoint + "/side/k?")
        assert urllib.request.urlopen(url).read() == b"side door"
        # The same session works on the S3 port's console (one node, one key).
        assert call(server.port, "GET", "/console/api/session", cookie=cookie).status == 200
    finally:
        stop_server(server)
