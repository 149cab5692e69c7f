"""Cases for the Django project."""
import re

from . import flow, get, raw
from .flask_cases import multipart_case

DJ = ("django",)
A = "django"


def dget(name, path, headers=(), **kw):
    return get(name, A, "{P}" + path, headers, apps=DJ, **kw)


def _csrf_token(body):
    m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    return m.group(1).decode() if m else ""


def _contact_flow(fl):
    r = fl.req("GET", "{P}/contact/")
    token = _csrf_token(fl.body(r))
    body = ("csrfmiddlewaretoken=%s&name=Ada&email=ada%%40example.com&message=Hallo+%%C3%%BC" % token).encode()
    fl.req("POST", "{P}/contact/", [("Content-Type", "application/x-www-form-urlencoded"),
                                    ("Referer", "http://localhost/contact/")], body)
    fl.req("GET", "{P}/contact/thanks/")


def _contact_invalid(fl):
    r = fl.req("GET", "{P}/contact/")
    token = _csrf_token(fl.body(r))
    body = ("csrfmiddlewaretoken=%s&name=&email=not-an-email" % token).encode()
    fl.req("POST", "{P}/contact/", [("Content-Type", "application/x-www-form-urlencoded")], body)


def _session_flow(fl):
    fl.req("GET", "{P}/session/set/?cart=3&colour=gr%C3%BCn")
    fl.req("GET", "{P}/session/get/")
    fl.req("GET", "{P}/session/set/?cart=4")
    fl.req("GET", "{P}/session/get/")


def _admin_flow(fl):
    fl.req("GET", "{P}/admin/")
    r = fl.req("GET", "{P}/admin/login/?next=/admin/")
    token = _csrf_token(fl.body(r))
    body = ("csrfmiddlewaretoken=%s&username=nobody&password=wrong&next=%%2Fadmin%%2F" % token).encode()
    fl.req("POST", "{P}/admin/login/?next=/admin/", [("Content-Type", "application/x-www-form-urlencoded")], body)


def _static_conditional(fl):
    r = fl.req("GET", "{P}/static-view/shop/site.css")
    lm = [v for k, v in r["responses"][0]["headers"] if k.lower() == "last-modified"]
    fl.req("GET", "{P}/static-view/shop/site.css", [("If-Modified-Since", lm[0] if lm else "x")])


CASES = [
    dget("home", "/"),
    dget("items_json", "/items/"),
    dget("items_filter", "/items/?in_stock=1"),
    dget("item_detail", "/items/3/"),
    dget("item_404_handler", "/items/42/"),
    dget("append_slash_redirect", "/items"),
    dget("append_slash_with_query", "/items?in_stock=1"),
    dget("append_slash_post", "/items", method="POST", body=b"x=1", headers=[("Content-Type", "application/x-www-form-urlencoded")]),
    dget("contact_get", "/contact/"),
    flow("contact_csrf_flow", A, _contact_flow, apps=DJ),
    flow("contact_invalid_form", A, _contact_invalid, apps=DJ),
    raw("contact_post_no_csrf", A, b"POST {P}/contact/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\nConnection: close\r\n\r\nname=Ada", apps=DJ),
    flow("session_signed_cookie", A, _session_flow, apps=DJ),
    flow("admin_login", A, _admin_flow, apps=DJ),
    dget("admin_login_page", "/admin/login/"),
    dget("static_view_css", "/static-view/shop/site.css"),
    dget("static_view_missing", "/static-view/shop/missing.css"),
    dget("static_view_head", "/static-view/shop/logo.txt", method="HEAD"),
    flow("static_view_conditional", A, _static_conditional, apps=DJ),
    multipart_case("upload_multipart_small", "/upload/", 4096, DJ, A),
    multipart_case("upload_multipart_20mb", "/upload/", 20 * 1024 * 1024, DJ, A),
    raw("upload_raw_chunked", A, b"POST {P}/upload/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n", apps=DJ),
    dget("upload_get_405", "/upload/"),
    dget("streaming_response", "/stream/"),
    dget("streaming_response_http10", "/stream/", version="HTTP/1.0", close=False),
    dget("file_response", "/file/"),
    dget("file_response_download", "/file/?download=1"),
    dget("file_response_head", "/file/", method="HEAD"),
    dget("server_error_handler", "/boom/"),
    dget("env_dump", "/env/?x=%C3%A9"),
    dget("absolute_uri", "/absolute/"),
    dget("absolute_uri_forwarded", "/absolute/", [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "shop.example.com")]),
    dget("disallowed_host", "/items/", [("Host", "evil.example.net")]),
    dget("disallowed_host_port", "/items/", [("Host", "localhost:99999x")]),
    dget("allowed_host_port", "/absolute/", [("Host", "example.com:8443")]),
    dget("head_request", "/head-check/", method="HEAD"),
    dget("options_request", "/head-check/", method="OPTIONS"),
    dget("echo_unicode", "/echo/%E7%B7%91/tea?leaf=%E8%8C%B6&leaf=2"),
    dget("not_found_handler", "/no/such/page/"),
    dget("keepalive_json", "/items/", close=False),
]
