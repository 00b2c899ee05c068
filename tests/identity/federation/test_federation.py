"""Federation: two real identity nodes over HTTP, the provincial one upstream of the city one.

The whole redirect chain runs through a ``requests.Session`` that follows every redirect by
hand and posts the upstream login form with its CSRF token, as a browser would.
"""

from __future__ import annotations

import html
import json
import re
import time
from urllib.parse import urljoin

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from common.db import get_db
from tests.support.oauth import CSRF_RE, REDIRECT, pkce_pair, query, register
from tests.support.suite import free_port

LI_ID = "610102198506154567"  # 李四, L2 in the demo data


@pytest.fixture
def nodes(identity_app, serve_app):
    """``build(seed_people)``: (provincial upstream URL, city node URL, city app, demo app id)."""
    from identity.seed import seed

    def build(seed_people: bool):
        up_port, down_port = free_port(), free_port()
        up_url, down_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{down_port}"
        # Same host, different ports: distinct cookie names keep the two nodes' sessions apart.
        upstream = identity_app(OAUTH_ISSUER=up_url, SESSION_COOKIE_NAME="province_session", PROXY_HOPS=0)
        with upstream.app_context():
            seed(upstream)
        fed_id, fed_secret = register(upstream, name="西安市节点", client_id="xian-node", skip_consent=True,
                                      redirect_uris=[f"{down_url}/federation/callback"],
                                      scopes=["openid", "profile", "idcard:full"])
        city = identity_app(OAUTH_ISSUER=down_url, PROXY_HOPS=0, FEDERATION_UPSTREAM_ISSUER=up_url,
                            FEDERATION_CLIENT_ID=fed_id, FEDERATION_CLIENT_SECRET=fed_secret)
        if seed_people:
            with city.app_context():
                seed(city)
        app_id, _ = register(city, client_type="public", skip_consent=True,
                             scopes=["openid", "profile", "idcard", "offline_access"])
        serve_app(upstream, port=up_port)
        serve_app(city, port=down_port)
        return up_url, down_url, city, app_id

    return build


def follow(http: requests.Session, url: str, *, stop_at: str, limit: int = 12) -> requests.Response:
    """GET ``url`` and follow redirects by hand until one points at ``stop_at`` (not fetched)."""
    for _ in range(limit):
        response = http.get(url, allow_redirects=False, timeout=10)
        if response.status_code not in (301, 302, 303):
            return response
        url = urljoin(url, response.headers["Location"])
        if url.startswith(stop_at):
            response.url = url
            return response
    raise AssertionError("too many redirects")


def run_chain(up_url: str, down_url: str, app_id: str) -> dict:
    http = requests.Session()
    verifier, challenge = pkce_pair()
    nonce = f"city-nonce-{time.monotonic_ns()}"  # a nonce is single use per client (replay check)
    authorize = (f"{down_url}/oauth/authorize?response_type=code&client_id={app_id}&redirect_uri={REDIRECT}"
                 f"&scope=openid+profile+idcard&state=city-state&nonce={nonce}"
                 f"&code_challenge={challenge}&code_challenge_method=S256")
    # 1. The city node has no session: its login page offers the provincial login.
    login_page = follow(http, authorize, stop_at="never")
    assert login_page.status_code == 200 and "/login" in login_page.url
    link = re.search(r'href="([^"]*federation/start[^"]*)"', login_page.text)
    assert link, "the login page offers no provincial login"
    # 2. Start federation: the browser lands on the provincial login page.
    up_login = follow(http, urljoin(login_page.url, html.unescape(link.group(1))), stop_at="never")
    assert up_login.url.startswith(f"{up_url}/login"), up_login.url
    token = CSRF_RE.search(up_login.text).group(1)
    # 3. Log in at the province; follow the redirects back through the city to the app.
    posted = http.post(up_login.url, data={"csrf_token": token, "login": LI_ID, "password": "demo-password-1"},
                       allow_redirects=False, timeout=10)
    assert posted.status_code in (302, 303), posted.text[:300]
    done = follow(http, urljoin(up_login.url, posted.headers["Location"]), stop_at=REDIRECT)
    assert done.url.startswith(REDIRECT), (done.status_code, done.url, done.text[:300])
    callback = query(done.url)
    assert callback["state"] == "city-state"
    tokens = requests.post(f"{down_url}/oauth/token", timeout=10, data={
        "grant_type": "authorization_code", "code": callback["code"], "redirect_uri": REDIRECT,
        "client_id": app_id, "code_verifier": verifier}).json()
    keys = KeySet.import_key_set(requests.get(f"{down_url}/jwks.json", timeout=10).json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["iss"] == down_url and claims["nonce"] == nonce
    return claims


def test_federated_login_links_an_existing_person_by_id_number(nodes):
    from identity.accounts import find_person_by_id_number

    up_url, down_url, city, app_id = nodes(seed_people=True)
    claims = run_chain(up_url, down_url, app_id)
    with city.app_context(), get_db(city).session() as session:
        local = find_person_by_id_number(session, LI_ID)
    assert claims["sub"] == local.id and claims["name"] == "李四"
    assert claims["amr"] == ["fed"]
    # A second login reuses the link (same local subject).
    assert run_chain(up_url, down_url, app_id)["sub"] == local.id


def test_federated_login_creates_the_person_at_the_upstream_level(nodes):
    from identity.accounts import find_person_by_id_number

    up_url, down_url, city, app_id = nodes(seed_people=False)
    claims = run_chain(up_url, down_url, app_id)
    with city.app_context(), get_db(city).session() as session:
        created = find_person_by_id_number(session, LI_ID)
        assert created is not None and created.assurance_level == 2  # the upstream's L2, not more
    assert claims["sub"] == created.id and claims["acr"] == "urn:xsn:acr:L2"
    assert claims["id_number"] == "6101**********4567"


def test_callback_with_a_forged_state_is_refused(nodes):
    up_url, down_url, _, _ = nodes(seed_people=False)
    http = requests.Session()
    follow(http, f"{down_url}/federation/start?next=/account", stop_at=up_url)
    response = http.get(f"{down_url}/federation/callback?code=x&state=forged", timeout=10)
    assert response.status_code == 400 and "state mismatch" in response.text


def _session_of(app, http: requests.Session) -> dict:
    """The city node's session cookie, decoded (it is signed, not encrypted: the browser can read it)."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(http.cookies.get(app.config["SESSION_COOKIE_NAME"]))


def test_pending_federation_is_kept_server_side_not_in_the_cookie(nodes):
    from identity.federation.pages import PENDING_KEY
    from identity.oauth.kernel import digest
    from identity.oauth.models import FederationPending

    up_url, down_url, city, _ = nodes(seed_people=False)
    http = requests.Session()
    to_upstream = follow(http, f"{down_url}/federation/start?next=/account", stop_at=up_url)
    sent = query(to_upstream.url)
    cookie = _session_of(city, http)
    assert cookie == {PENDING_KEY: sent["state"]}  # only the state, which the URL shows anyway
    with city.app_context(), get_db(city).session() as session:
        row = session.get(FederationPending, digest(sent["state"]))
        assert row is not None and row.nonce == sent["nonce"] and row.next_url == "/account"
        verifier = row.code_verifier
    raw = http.cookies.get(city.config["SESSION_COOKIE_NAME"])
    for secret in (verifier, sent["nonce"]):
        assert secret not in json.dumps(cookie) and secret not in raw


def _back_at_the_callback(http: requests.Session, down_url: str) -> requests.Response:
    """A federated login started at the city node and signed in at the province, stopped at the
    redirect to the city's callback (``url``: the callback, not fetched)."""
    up_login = follow(http, f"{down_url}/federation/start?next=/account", stop_at="never")
    token = CSRF_RE.search(up_login.text).group(1)
    posted = http.post(up_login.url, data={"csrf_token": token, "login": LI_ID, "password": "demo-password-1"},
                       allow_redirects=False, timeout=10)
    return follow(http, urljoin(up_login.url, posted.headers["Location"]), stop_at=f"{down_url}/federation/callback")


def test_replayed_state_is_refused(nodes):
    from identity.oauth.kernel import digest
    from identity.oauth.models import FederationPending

    _, down_url, city, _ = nodes(seed_people=False)
    http = requests.Session()
    back = _back_at_the_callback(http, down_url)
    callback_url = back.url
    stolen = http.cookies.copy()  # the cookie as it was before the callback (holding the state)
    first = http.get(callback_url, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"].endswith("/account")
    with city.app_context(), get_db(city).session() as session:
        assert session.get(FederationPending, digest(query(callback_url)["state"])) is None  # consumed
    replay = requests.Session()
    replay.cookies.update(stolen)
    again = replay.get(callback_url, allow_redirects=False, timeout=10)
    assert again.status_code == 400 and "no federation login in progress" in again.text


@pytest.mark.parametrize("status, body", [(200, "<html>proxy error</html>"), (200, '["id_token"]'),
                                          (200, '{"id_token": 5}'), (400, '{"error": "invalid_grant"}')])
def test_an_upstream_token_answer_without_an_id_token_is_a_refusal_page(nodes, monkeypatch, status, body):
    """Anything but 200 with a JSON object holding an id_token string ends on the 502 page, never a 500."""
    from common.http import ServiceClient

    _, down_url, _, _ = nodes(seed_people=False)
    http = requests.Session()
    back = _back_at_the_callback(http, down_url)
    answer = requests.Response()
    answer.status_code, answer._content = status, body.encode()
    monkeypatch.setattr(ServiceClient, "post", lambda *args, **kwargs: answer)  # the node's call upstream only
    response = http.get(back.url, allow_redirects=False, timeout=10)
    assert response.status_code == 502 and "refused the code" in response.text


def test_unknown_or_expired_state_is_refused(identity_app):
    from datetime import timedelta

    from common.db import utcnow
    from identity.federation.pages import PENDING_KEY
    from identity.oauth.kernel import digest
    from identity.oauth.models import FederationPending

    app = identity_app(FEDERATION_UPSTREAM_ISSUER="http://127.0.0.1:9/never", FEDERATION_CLIENT_ID="x")
    with app.app_context(), get_db(app).session() as session:
        session.add(FederationPending(state_hash=digest("old-state"), nonce="n", code_verifier="v",
                                      next_url="/account", created_at=utcnow() - timedelta(hours=1),
                                      expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    http = app.test_client()
    for value in ("never-issued", "old-state"):
        with http.session_transaction() as cookie:  # the cookie agrees: only the table can refuse
            cookie[PENDING_KEY] = value
        response = http.get(f"/federation/callback?code=c&state={value}")
        assert response.status_code == 400
        assert "no federation login in progress" in response.get_data(as_text=True)
    # Without any state in the cookie nothing is looked up at all.
    assert http.get("/federation/callback?code=c&state=old-state").status_code == 400
