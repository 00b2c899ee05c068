"""One JSON access line per request (request id, client, subject), rendered by orjson; metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from prometheus_client import CONTENT_TYPE_LATEST
from structlog.testing import capture_logs

from common.web.logging import render_json

TEST_KEK = "00112233445566778899aabbccddeeff"


def test_each_request_writes_one_json_access_line_with_request_id_client_and_subject(tmp_path):
    # A fresh process: logging is configured once per process, to the real stderr.
    script = textwrap.dedent("""
        from flask import g
        import seal

        app = seal.create_app({"TESTING": True, "PROXY_HOPS": 1})

        @app.get("/test/as-client")
        def as_client():
            g.client_id, g.subject = "xsn-licenses", "person-42"  # what common.web.auth sets
            return {"ok": True}

        client = app.test_client()
        client.get("/test/as-client", headers={"X-Request-ID": "req-from-gateway-1"})
        client.get("/nope")
        client.get("/metrics")
        client.get("/livez")
        client.get("/readyz")
    """)
    access = _access_lines(script, tmp_path, "INFO")
    # Probes and scrapes are DEBUG (ACCESS_LOG_DEBUG_ROUTES): at INFO only the other requests.
    assert [(line["path"], line["status"]) for line in access] == [("/test/as-client", 200), ("/nope", 404)]
    first, second = access
    assert first["request_id"] == "req-from-gateway-1"
    assert first["client_id"] == "xsn-licenses" and first["subject"] == "person-42"
    assert first["service"] == "seal" and first["level"] == "info" and first["method"] == "GET"
    assert first["timestamp"].endswith("Z") and isinstance(first["duration_ms"], float)
    assert len(second["request_id"]) == 32 and second["client_id"] is None  # generated; nothing bound from before


def _access_lines(script: str, tmp_path, level: str) -> list[dict]:
    """The access lines a fresh process running ``script`` writes at log level ``level``."""
    env = dict(os.environ, XSN_VAR_DIR=str(tmp_path), XSN_KEK=TEST_KEK, XSN_LOG_LEVEL=level,
               XSN_DATABASE_URL=f"sqlite:///{tmp_path / 'seal.db'}")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


def test_probe_lines_are_debug_and_the_list_is_configurable(tmp_path):
    script = textwrap.dedent("""
        import seal

        client = seal.create_app({"TESTING": True, "PROXY_HOPS": 1}).test_client()
        for path in ("/livez", "/info", "/readyz", "/metrics"):
            client.get(path)
        quieter = seal.create_app({"TESTING": True, "ACCESS_LOG_DEBUG_ROUTES": ["/info"]}).test_client()
        quieter.get("/livez")
        quieter.get("/info")
        listed = seal.create_app({"TESTING": True, "ACCESS_LOG_DEBUG_ROUTES": "/info,/livez"}).test_client()
        listed.get("/livez")  # as XSN_ACCESS_LOG_DEBUG_ROUTES=/info,/livez gives it (not JSON)
        listed.get("/readyz")
    """)
    access = _access_lines(script, tmp_path, "DEBUG")
    assert [(line["path"], line["level"]) for line in access] == [
        ("/livez", "debug"), ("/info", "info"), ("/readyz", "debug"), ("/metrics", "debug"),
        ("/livez", "info"), ("/info", "debug"), ("/livez", "debug"), ("/readyz", "info")]


def test_the_revocation_feed_polled_every_second_is_not_an_info_line(make_app):
    client = make_app("identity").test_client()
    with capture_logs() as captured:
        client.get("/oauth/revocations")  # the gateway's poll (here without its token: 401)
        client.get("/info")
    assert [(e["path"], e["log_level"]) for e in captured if e["event"] == "request"] == [("/info", "info")]


def test_json_rendering_never_loses_a_line():
    class Thing:
        def __repr__(self):
            return "<thing>"

    assert json.loads(render_json(None, "info", {"event": "x", "n": 1, "s": "中文"})) == {"event": "x", "n": 1,
                                                                                       "s": "中文"}
    assert json.loads(render_json(None, "info", {"event": "x", "obj": Thing()}))["obj"] == "<thing>"
    assert json.loads(render_json(None, "info", {"event": "x", 3: "int key"}))["3"] == "int key"
    # orjson refuses integers beyond 64 bits: the standard library takes the line instead.
    assert json.loads(render_json(None, "info", {"event": "x", "big": 2**70}))["big"] == 2**70


def test_metrics_count_each_route_once_per_request_by_route_and_status(make_app):
    client = make_app("seal").test_client()
    for _ in range(3):
        client.get("/livez")
    client.post("/livez")
    client.get("/nope")
    answer = client.get("/metrics")
    assert answer.content_type == CONTENT_TYPE_LATEST  # one charset parameter, as Prometheus writes it
    text = answer.get_data(as_text=True)
    assert 'xsn_http_requests_total{method="GET",route="/livez",service="seal",status="200"} 3.0' in text
    assert 'xsn_http_requests_total{method="POST",route="<unmatched>",service="seal",status="405"} 1.0' in text
    assert 'xsn_http_requests_total{method="GET",route="<unmatched>",service="seal",status="404"} 1.0' in text
    assert 'xsn_http_request_duration_seconds_count{method="GET",route="/livez",service="seal"} 3.0' in text
    assert 'xsn_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/livez",service="seal"}' in text


def test_the_direct_access_line_is_what_structlog_writes(tmp_path):
    # log_access skips structlog's processor chain (issue 9): its line must be the same bytes
    # (but for the time), under the same configuration, and go through structlog otherwise.
    script = textwrap.dedent("""
        import structlog
        from structlog.testing import capture_logs
        from common.web.logging import configure_logging, log_access

        configure_logging("INFO")
        log = structlog.get_logger("xsn.access")
        structlog.contextvars.bind_contextvars(request_id="r-1234567", service="seal", client_id="bound")
        fields = {"method": "GET", "path": "/x", "status": 200, "duration_ms": 1.5, "client_id": None,
                  "subject": "中文 \\u2028"}
        log.info("request", **dict(fields))
        log_access(log, dict(fields))
        with capture_logs() as captured:  # another configuration: the line goes through structlog
            log_access(structlog.get_logger("xsn.access.fresh"), dict(fields))
        assert captured == [{**fields, "event": "request", "log_level": "info"}], captured
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr.decode()
    by_structlog, direct = (json.loads(line) for line in done.stderr.splitlines())
    assert list(direct) == list(by_structlog)  # same keys in the same order
    assert {**direct, "timestamp": None} == {**by_structlog, "timestamp": None}
    assert direct["client_id"] is None and direct["request_id"] == "r-1234567" and direct["timestamp"].endswith("Z")


def test_no_access_line_above_info(tmp_path):
    script = textwrap.dedent("""
        import structlog
        from common.web.logging import configure_logging, log_access

        configure_logging("WARNING")
        log_access(structlog.get_logger("xsn.access"), {"method": "GET", "path": "/x", "status": 200})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
