"""The cookie session is Flask's, but only requests that carry or change one pay for it."""

from __future__ import annotations

from flask import session

COOKIE = "xsn_seal_session"


def _app(make_app, **config):
    app = make_app("seal", **config)

    @app.post("/test/session/<value>")
    def write(value):
        session["value"] = value
        return {"ok": True}

    @app.get("/test/session")
    def read():
        return {"value": session.get("value")}

    @app.delete("/test/session")
    def clear():
        session.clear()
        return {"ok": True}

    return app


def test_a_request_that_never_touches_the_session_sets_no_cookie_and_no_vary(make_app):
    client = _app(make_app).test_client()
    response = client.get("/livez")
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_a_written_session_is_signed_into_a_cookie_and_read_back(make_app):
    client = _app(make_app).test_client()
    written = client.post("/test/session/hello")
    assert f"{COOKIE}=" in written.headers["Set-Cookie"]
    assert "HttpOnly" in written.headers["Set-Cookie"]
    read = client.get("/test/session")
    assert read.json == {"value": "hello"}
    assert "Cookie" in read.headers["Vary"]  # a page that read the session must not be cached shared


def test_a_tampered_cookie_is_an_empty_session(make_app):
    client = _app(make_app).test_client()
    client.post("/test/session/hello")
    cookie = client.get_cookie(COOKIE)
    client.set_cookie(COOKIE, cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB"))
    assert client.get("/test/session").json == {"value": None}


def test_clearing_a_session_deletes_its_cookie(make_app):
    client = _app(make_app).test_client()
    client.post("/test/session/hello")
    cleared = client.delete("/test/session")
    assert f"{COOKIE}=;" in cleared.headers["Set-Cookie"]
    assert client.get("/test/session").json == {"value": None}


def test_other_cookies_alone_do_not_open_a_session(make_app):
    client = _app(make_app).test_client()
    client.set_cookie("xsn_lang", "en")
    response = client.get("/test/session")
    assert response.json == {"value": None}
    assert "Set-Cookie" not in response.headers


def test_a_rotated_secret_key_still_reads_cookies_signed_under_a_fallback(make_app):
    app = _app(make_app, SECRET_KEY="old-key-" + "0" * 24)
    client = app.test_client()
    client.post("/test/session/kept")
    app.config["SECRET_KEY_FALLBACKS"] = [app.secret_key]
    app.secret_key = "new-key-" + "1" * 24
    assert client.get("/test/session").json == {"value": "kept"}
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/test/session").json == {"value": None}  # the old key is no longer trusted
