"""The trusted boundary: hosts, the real client address, which headers go on."""

from __future__ import annotations

import pytest

from gateway.edge.boundary import Boundary, caller_headers, response_headers, upstream_headers
from gateway.edge.problems import UnknownHost


def test_hosts_configured_and_embedded_loopback():
    boundary = Boundary.from_settings("https://gw.xa.gov.cn", extra_hosts=["api.xa.gov.cn"], listen_port=8000,
                                      embedded=True)
    for host in ("gw.xa.gov.cn", "GW.xa.gov.cn", "gw.xa.gov.cn:443", "api.xa.gov.cn", "127.0.0.1:8000",
                 "localhost:8000"):
        boundary.check_host(host)
    for host in (None, "", "evil.example", "gw.xa.gov.cn:8443", "gw.xa.gov.cn.evil.example", "127.0.0.1"):
        with pytest.raises(UnknownHost):
            boundary.check_host(host)


def test_pages_on_another_allowed_host_go_to_the_public_base_url():
    boundary = Boundary.from_settings("https://gw.xa.gov.cn", extra_hosts=["api.xa.gov.cn"])
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "/seal/manage?lang=en", html) == \
        "https://gw.xa.gov.cn/seal/manage?lang=en"
    assert boundary.page_redirect("API.xa.gov.cn:443", "HEAD", "/", html) == "https://gw.xa.gov.cn/"
    for host in ("gw.xa.gov.cn", "GW.XA.gov.cn.", "gw.xa.gov.cn:443"):  # the public host, however written
        assert boundary.page_redirect(host, "GET", "/seal/manage", html) is None
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "/x", {"Accept": "application/json"}) is None  # an API call
    token = {**html, "Authorization": "Bearer x"}
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "/x", token) is None  # a token's
    assert boundary.page_redirect("api.xa.gov.cn", "POST", "/x", html) is None  # a form's body would be lost
    # an absolute-form target is not glued to the public host ("https://gw…http://other/x")
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "http://other.example/x", html) is None
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "*", html) is None
    # a raw byte, as aiohttp keeps it, could not be written into Location; its escaped form can
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "/x?q=\udce4", html) is None
    assert boundary.page_redirect("api.xa.gov.cn", "GET", "/x?q=%E4", html) == "https://gw.xa.gov.cn/x?q=%E4"
    embedded = Boundary.from_settings("http://127.0.0.1:8000", listen_port=8000, embedded=True)
    assert embedded.page_redirect("localhost:8000", "GET", "/gateway/audit/console/", html) == \
        "http://127.0.0.1:8000/gateway/audit/console/"


def test_production_serves_only_the_configured_hosts():
    boundary = Boundary.from_settings("https://gw.xa.gov.cn", listen_port=8000, embedded=False)
    with pytest.raises(UnknownHost):
        boundary.check_host("127.0.0.1:8000")


def test_client_forwarded_for_is_ignored_without_trusted_proxies():
    boundary = Boundary.from_settings("http://127.0.0.1:8000")
    assert boundary.client_address("198.51.100.7", ["203.0.113.1"]) == "198.51.100.7"


def test_trusted_proxies_counted_from_the_right():
    boundary = Boundary.from_settings("https://gw.example", trusted_proxies=["10.0.0.0/8"], trusted_hops=2)
    # client -> LB1 (10.1.1.1) -> LB2 (10.2.2.2, our peer); the client forged the leftmost entry.
    assert boundary.client_address("10.2.2.2", ["1.1.1.1, 198.51.100.7, 10.1.1.1"]) == "198.51.100.7"
    # A peer outside the trusted list: its header counts for nothing.
    assert boundary.client_address("198.51.100.8", ["1.1.1.1"]) == "198.51.100.8"
    # Only as many hops as configured, and never past an untrusted address.
    one = Boundary.from_settings("https://gw.example", trusted_proxies=["10.0.0.0/8"])
    assert one.client_address("10.2.2.2", ["1.1.1.1, 10.1.1.1"]) == "10.1.1.1"
    assert boundary.client_address("10.2.2.2", ["garbage"]) == "10.2.2.2"


def test_upstream_headers_drop_hop_by_hop_forwarding_and_caller_headers():
    incoming = [("Connection", "keep-alive, X-Custom-Hop"), ("X-Custom-Hop", "1"), ("Keep-Alive", "5"),
                ("Transfer-Encoding", "chunked"), ("Host", "evil"), ("X-Forwarded-For", "1.2.3.4"),
                ("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4"), ("X-XSN-Subject", "admin"),
                ("x-xsn-scopes", "all"), ("X-Request-ID", "x"), ("Accept", "a/b"), ("Cookie", "c=1")]
    kept = upstream_headers(incoming, ["keep-alive, X-Custom-Hop"])
    assert kept == [("Accept", "a/b"), ("Cookie", "c=1")]


def test_caller_headers_only_from_verified_claims():
    assert caller_headers(None) == []
    headers = dict(caller_headers({"client_id": "c", "sub": "s", "scope": "a b", "jti": "j", "acr": "L2"}))
    assert headers == {"X-XSN-Client-Id": "c", "X-XSN-Subject": "s", "X-XSN-Scopes": "a b", "X-XSN-Token-Id": "j",
                       "X-XSN-ACR": "L2"}
    assert "X-XSN-Subject" not in dict(caller_headers({"client_id": "c", "sub": "s\r\nX-Evil: 1"}))


def test_response_headers_drop_connection_named():
    kept = response_headers([("Connection", "X-A"), ("X-A", "1"), ("Set-Cookie", "a"), ("Set-Cookie", "b"),
                             ("Content-Length", "3")], ["X-A"])
    assert kept == [("Set-Cookie", "a"), ("Set-Cookie", "b")]


def test_response_headers_drop_a_prefix_in_the_same_pass():
    kept = response_headers([("Access-Control-Allow-Origin", "*"), ("access-control-max-age", "9"), ("Vary", "Origin"),
                             ("Keep-Alive", "timeout=5"), ("X-Request-ID", "theirs")], [],
                            drop_prefix="access-control-")
    assert kept == [("Vary", "Origin")]
