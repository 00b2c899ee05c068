"""common.web.auditor_api over both Merkle logs (the gateway's audit log, the seal's signature
log): every view of either needs the auditor's scope, and the one consistency-proof view answers
a query the same way for both."""

from __future__ import annotations

import pytest

LOGS = {
    "gateway": {"blueprint": "gateway_audit.", "prefix": "/audit", "aud": "xsn:gateway",
                "config": {"AUDIT_CHECKPOINT_INTERVAL": 0}},
    "seal": {"blueprint": "seal_log.", "prefix": "/log", "aud": "xsn:seal",
             "config": {"SEAL_LOG_ORIGIN": "seal.test/log", "SEAL_LOG_CHECKPOINT_INTERVAL": 3600}},
}


@pytest.fixture(params=sorted(LOGS))
def logged(request, make_app, tokens):
    spec = LOGS[request.param]
    app = make_app(request.param, **spec["config"])
    tokens.install(app)
    return app, spec


def test_every_view_of_either_log_needs_the_auditor_s_scope(logged, tokens):
    app, spec = logged
    views = [rule.rule.replace("<bigint:index>", "1").replace("<int:index>", "1")
             for rule in app.url_map.iter_rules() if rule.endpoint.startswith(spec["blueprint"])]
    assert f"{spec['prefix']}/proof/consistency" in views and len(views) >= 6
    wrong_scope = tokens.bearer(sub="p", scope="seal:sign", aud=spec["aud"], client_id="xsn-x")
    client = app.test_client()
    assert {view: client.get(view).status_code for view in views} == dict.fromkeys(views, 401)
    assert {view: client.get(view, headers=wrong_scope).status_code for view in views} == dict.fromkeys(views, 403)


@pytest.mark.parametrize("query", ["first=3&second=2", "first=1&second=0"])
def test_sizes_out_of_order_get_one_answer_from_both_logs(logged, tokens, query):
    app, spec = logged
    auditor = tokens.bearer(sub="auditor-1", scope="audit:read", aud=spec["aud"], client_id="xsn-auditor")
    refused = app.test_client().get(f"{spec['prefix']}/proof/consistency?{query}", headers=auditor)
    problem = refused.get_json()
    assert (refused.status_code, refused.mimetype, problem["code"]) == (422, "application/problem+json",
                                                                         "validation_failed")
    assert "second" in str(problem["errors"])
