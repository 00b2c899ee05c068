"""Auditor console (审计控制台): search the signature log, open an entry, see its proof checked.

Server-rendered, usable without JavaScript. The console runs on the same access tokens as
the API: the auditor signs in by presenting an access token with scope ``audit:read`` (issued
by identity), which is verified on every page view (fail closed: an expired or revoked key
signs the auditor out). The proof shown on an entry page is checked server-side with the
very functions the offline CLI uses (:mod:`seal.verify_offline`), each step listed. Every
console view is recorded in ``audit_queries`` like an API call.
"""

from __future__ import annotations

import json

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for

from common.auth import InsufficientScope, InvalidToken, get_verifier, scopes_of
from common.db import get_db, get_session
from common.errors import Problem
from common.i18n import _, init_i18n
from common.pages import protect
from seal import log, verify_offline
from seal import log_api as api

bp = protect(Blueprint("seal_audit", __name__, url_prefix="/audit"))
TOKEN_KEY = "audit_token"  # noqa: S105 - the session key name, not a secret
SEARCH_FIELDS = ("seal_code", "org_code", "signer", "document_digest", "since", "until")

CATALOG = {
    "zh": {
        "audit.title": "签章日志审计控制台",
        "audit.login": "审计员登录",
        "audit.login_help": "请粘贴具有 audit:read 权限的访问令牌（由统一身份认证节点签发）。",
        "audit.token": "访问令牌",
        "audit.sign_in": "登录",
        "audit.sign_out": "退出",
        "audit.bad_token": "令牌无效或已过期。",
        "audit.no_scope": "该令牌没有 audit:read 权限。",
        "audit.checkpoint": "最新检查点",
        "audit.size": "树大小",
        "audit.root": "根哈希",
        "audit.search": "检索日志",
        "audit.search_note": "检索基于索引，本身不提供证明；请打开条目查看其包含证明。",
        "audit.seal_code": "印章编码",
        "audit.org_code": "统一社会信用代码",
        "audit.signer": "签章人",
        "audit.document_digest": "文档摘要（SM3 十六进制）",
        "audit.since": "起始时间",
        "audit.until": "截止时间",
        "audit.results": "检索结果（共 {total} 条）",
        "audit.index": "序号",
        "audit.time": "签章时间",
        "audit.open": "查看",
        "audit.none": "没有匹配的条目。",
        "audit.entry": "日志条目 #{index}",
        "audit.event": "事件（规范化 JSON）",
        "audit.proof": "包含证明",
        "audit.checks": "校验步骤",
        "audit.all_ok": "全部校验通过",
        "audit.some_failed": "存在未通过的校验",
        "audit.prev": "上一页",
        "audit.next": "下一页",
        "audit.back": "返回检索",
        "audit.bad_query": "检索条件有误：{detail}",
    },
    "en": {
        "audit.title": "Signature log audit console",
        "audit.login": "Auditor sign-in",
        "audit.login_help": "Paste an access token with scope audit:read (issued by the identity node).",
        "audit.token": "Access token",
        "audit.sign_in": "Sign in",
        "audit.sign_out": "Sign out",
        "audit.bad_token": "The token is invalid or has expired.",
        "audit.no_scope": "This token lacks scope audit:read.",
        "audit.checkpoint": "Latest checkpoint",
        "audit.size": "Tree size",
        "audit.root": "Root hash",
        "audit.search": "Search the log",
        "audit.search_note": "Search is an index and is not itself proven; open an entry to see its inclusion proof.",
        "audit.seal_code": "Seal code",
        "audit.org_code": "Unified social credit code",
        "audit.signer": "Signer",
        "audit.document_digest": "Document digest (SM3, hex)",
        "audit.since": "From",
        "audit.until": "Until",
        "audit.results": "Results ({total} in all)",
        "audit.index": "Index",
        "audit.time": "Signed at",
        "audit.open": "Open",
        "audit.none": "No matching entries.",
        "audit.entry": "Log entry #{index}",
        "audit.event": "Event (canonical JSON)",
        "audit.proof": "Inclusion proof",
        "audit.checks": "Verification steps",
        "audit.all_ok": "Every check passed",
        "audit.some_failed": "Some checks failed",
        "audit.prev": "Previous",
        "audit.next": "Next",
        "audit.back": "Back to search",
        "audit.bad_query": "Invalid search: {detail}",
    },
}


def _auditor() -> dict | None:
    """Claims of the signed-in auditor, re-verified now; ``None`` signs them out."""
    token = session.get(TOKEN_KEY)
    if not token:
        return None
    try:
        claims = get_verifier().verify(token)
    except InvalidToken:
        session.pop(TOKEN_KEY, None)
        return None
    if api.AUDIT_SCOPE not in scopes_of(claims):
        session.pop(TOKEN_KEY, None)
        return None
    g.subject, g.client_id = claims.get("sub"), claims.get("client_id")
    return claims


@bp.after_request
def _record_view(response):
    if request.endpoint in ("seal_audit.index", "seal_audit.entry") and g.get("subject"):
        with get_db().session() as db_session:
            log.record_query(db_session, subject=g.get("subject"), client_id=g.get("client_id"),
                             action=f"console.{request.endpoint.split('.')[-1]}",
                             query={"path": request.path, "args": request.args.to_dict(flat=True)},
                             status=response.status_code, request_id=g.get("request_id"))
            db_session.commit()
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        try:
            claims = get_verifier().verify(token)
            if api.AUDIT_SCOPE not in scopes_of(claims):
                raise InsufficientScope()
        except InvalidToken:
            error = _("audit.bad_token")
        except InsufficientScope:
            error = _("audit.no_scope")
        else:
            session[TOKEN_KEY] = token
            return redirect(url_for("seal_audit.index"))
    return render_template("seal/audit_login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout():
    session.pop(TOKEN_KEY, None)
    return redirect(url_for("seal_audit.login"))


def _parse_search() -> tuple[dict, str | None]:
    """Validate the search form with the API's schema; returns (args, error message)."""
    raw = {k: v.strip() for k, v in request.args.items() if v.strip() and k in (*SEARCH_FIELDS, "page")}
    for name in ("since", "until"):  # a time typed without an offset is Beijing time
        if name in raw and len(raw[name]) <= 19:
            raw[name] += "+08:00"
    errors = api.s.SearchArgs().validate(raw)
    if errors:
        return {}, _("audit.bad_query", detail="; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in errors.items()))
    return api.s.SearchArgs().load(raw), None


@bp.route("/")
def index():
    if _auditor() is None:
        return redirect(url_for("seal_audit.login"))
    db_session = get_session()
    checkpoint = api.latest(db_session)
    args, error = _parse_search()
    rows, total = [], 0
    if not error:
        query = log.SearchQuery(**{k: args.get(k) for k in SEARCH_FIELDS})
        rows, total = log.search_entries(db_session, query, page=args["page"], per_page=args["per_page"])
    entries = [api.entry_dict(e) for e in rows]
    page = args.get("page", 1)
    return render_template("seal/audit_index.html", checkpoint=api.checkpoint_dict(checkpoint), entries=entries,
                           total=total, page=page, has_next=page * args.get("per_page", 20) < total,
                           form=request.args, error=error, fields=SEARCH_FIELDS)


@bp.route("/entries/<int:index>")
def entry(index: int):
    if _auditor() is None:
        return redirect(url_for("seal_audit.login"))
    db_session = get_session()
    try:
        bundle = api.entry_with_proof(db_session, index)
    except Problem as exc:
        flash(exc.detail)
        return redirect(url_for("seal_audit.index"))
    # Check it as an auditor would offline: against every published log key, pinned here
    # from the key store rather than taken from the evidence.
    keys = api.keys_document(db_session)["keys"]
    key = next(k for k in keys if k["key_id"] == bundle["checkpoint"]["key_id"])
    report = verify_offline.verify_bundle(bundle, key["public_key_pem"])
    return render_template("seal/audit_entry.html", bundle=bundle, report=report.to_dict(),
                           event_json=json.dumps(bundle["entry"]["event"], ensure_ascii=False, indent=2))


def init_pages(app: Flask) -> None:
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
