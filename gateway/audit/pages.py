"""Auditor console (审计控制台): the gateway's audit log and the seal node's signature log, one page.

Server-rendered, usable without JavaScript, Chinese by default (``?lang=en``). Auditors sign in
with their identity account (:mod:`common.web.console_login`, client ``xsn-gateway-console``);
the token must carry ``audit:read`` and is verified again on every view. The gateway log is read
from the gateway's database; the signature log from the seal node's auditor API
(:mod:`gateway.audit.seal_log`). Each view is appended to the audit log like an API query.
"""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_smorest import Api

from common.db import get_session
from common.web.console_login import console_required, init_console_login, make_console_login
from common.web.extensions import app_singleton
from common.web.i18n import _, init_i18n
from common.web.pages import html_errors, protect
from gateway.audit import api, log
from gateway.audit import schemas as s
from gateway.audit.config import SETTINGS
from gateway.audit.models import ConsoleLogin, ConsoleSession
from gateway.audit.seal_log import SealLog, SealLogUnavailable
from gateway.audit.spool import AuditUnavailable

CONSOLE = "gateway_audit_login"
CONSOLE_CLIENT_ID = "xsn-gateway-console"  # seeded by identity (identity/oauth/seed.py)
bp = html_errors(protect(Blueprint("gateway_audit_console", __name__, url_prefix="/audit/console",
                                   template_folder="templates")),
                 back="gateway_audit_console.index", back_text="ga.back")
login_bp = make_console_login(CONSOLE, client_id=CONSOLE_CLIENT_ID, scopes=("openid", "profile", api.AUDIT_SCOPE),
                              on_success_endpoint="gateway_audit_console.index", url_prefix="/audit/console",
                              base_template="gateway_audit/base.html")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FIELDS = ("request_id", "client_id", "subject", "route", "status", "since", "until")

CATALOG = {
    "zh": {
        "ga.title": "统一审计控制台",
        "ga.gateway_log": "接入网关调用审计日志", "ga.seal_log": "电子印章签章日志",
        "ga.checkpoint": "最新签名检查点", "ga.size": "记录数", "ga.root": "根哈希",
        "ga.search": "检索", "ga.find_note": "按请求编号可直接找到一次调用。检索基于索引；每条记录的证明见导出。",
        "ga.request_id": "请求编号", "ga.client_id": "客户端", "ga.subject": "用户标识", "ga.route": "路由",
        "ga.status": "状态码", "ga.since": "起始时间", "ga.until": "截止时间",
        "ga.results": "检索结果（共 {total} 条）", "ga.index": "序号", "ga.time": "时间（北京时间）",
        "ga.method": "方法",
        "ga.path": "路径", "ga.outcome": "结果", "ga.none": "没有匹配的记录。",
        "ga.bad_query": "检索条件有误，请检查：{detail}",
        "ga.seal_unavailable": "暂时无法读取签章日志：{detail}", "ga.seal_signer": "签章人",
        "ga.seal_code": "印章编码", "ga.prev": "上一页", "ga.next": "下一页",
        "ga.page": "页码", "ga.list_sep": "、", "ga.back": "返回审计控制台",
        "ga.outcome_ok": "成功", "ga.outcome_denied": "拒绝访问", "ga.outcome_rejected": "请求无效",
        "ga.outcome_error": "出错",
    },
    "en": {
        "ga.title": "Audit console",
        "ga.gateway_log": "Gateway call audit log", "ga.seal_log": "Seal signature log",
        "ga.checkpoint": "Latest signed checkpoint", "ga.size": "Records", "ga.root": "Root hash",
        "ga.search": "Search", "ga.find_note": "A request id finds one call directly. Search is an index; "
                                             "each record's proof comes with an export.",
        "ga.request_id": "Request id", "ga.client_id": "Client", "ga.subject": "Subject", "ga.route": "Route",
        "ga.status": "Status", "ga.since": "From", "ga.until": "Until",
        "ga.results": "Results ({total} in all)", "ga.index": "Index", "ga.time": "Time (Beijing)",
        "ga.method": "Method",
        "ga.path": "Path", "ga.outcome": "Outcome", "ga.none": "No matching records.",
        "ga.bad_query": "Invalid search; check: {detail}",
        "ga.seal_unavailable": "The signature log cannot be read right now: {detail}", "ga.seal_signer": "Signer",
        "ga.seal_code": "Seal code", "ga.prev": "Previous", "ga.next": "Next",
        "ga.page": "Page", "ga.list_sep": ", ", "ga.back": "Back to the audit console",
        "ga.outcome_ok": "OK", "ga.outcome_denied": "Denied", "ga.outcome_rejected": "Invalid request",
        "ga.outcome_error": "Error",
    },
}


def auditor_required(view):
    @console_required(CONSOLE, api.AUDIT_SCOPE)
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.subject, g.client_id = g.console_claims.get("sub"), g.console_claims.get("client_id")
        return view(*args, **kwargs)

    return wrapper


@bp.after_request
def _record_view(response):
    claims = g.get("console_claims") or {}
    subject = g.get("subject") or claims.get("sub")
    if request.endpoint == "gateway_audit_console.index" and subject:
        try:
            api.record_query(action="console.index", status=response.status_code, subject=subject,
                             client_id=g.get("client_id") or claims.get("client_id"), acr=claims.get("acr"))
        except AuditUnavailable:
            return current_app.response_class(_("ga.title") + ": 503", status=503)
    return response


def _parse_search() -> tuple[dict, str | None]:
    raw = {k: v.strip() for k, v in request.args.items() if v.strip() and k in (*FIELDS, "page")}
    for name in ("since", "until"):  # a time typed without an offset is Beijing time
        if name in raw and len(raw[name]) <= 19:
            raw[name] += "+08:00"
    raw["per_page"] = "20"
    errors = s.SearchArgs().validate(raw)
    if errors:
        # The fields by their labels: the validator's own messages are English only.
        names = _("ga.list_sep").join(_(f"ga.{name}") for name in errors)
        return {}, _("ga.bad_query", detail=names)
    return s.SearchArgs().load(raw), None


def seal_log() -> SealLog:
    """This app's reader of the seal signature log (one per app: its token is this app's identity's)."""
    return app_singleton("gateway_seal_log", lambda: SealLog(current_app.config))


@bp.route("/")
@auditor_required
def index():
    session = get_session()
    args, error = _parse_search()
    rows, total = [], 0
    if not error:
        query = log.SearchQuery(**{k: args.get(k) for k in ("since", "until", "client_id", "subject", "route",
                                                            "status", "request_id")})
        rows, total = log.search(session, query, page=args["page"], per_page=args["per_page"])
    checkpoint = api.latest(session)
    try:
        seal, seal_error = seal_log().summary(), None
    except SealLogUnavailable as exc:
        seal, seal_error = None, str(exc)
    page = args.get("page", 1)
    return render_template("gateway_audit/index.html", checkpoint=checkpoint,
                           records=[api.record_dict(r) for r in rows],
                           total=total, page=page, has_next=page * 20 < total, form=request.args, error=error,
                           fields=FIELDS, seal=seal, seal_error=seal_error)


def beijing_time(value: str | None) -> str:
    """An ISO 8601 time shown in Asia/Shanghai (stored in UTC); unreadable text is shown as is."""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value or "")
    if when.tzinfo is None:
        return str(value)
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def init_pages(app: Flask) -> None:
    app.add_template_filter(beijing_time, "beijing_time")
    init_console_login(app, ConsoleLogin, ConsoleSession)
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
    app.register_blueprint(login_bp)


def init_audit(app: Flask, rest_api: Api) -> None:
    """Wire the audit log into the gateway app: settings, the auditor API, the auditor console.

    Here rather than in :mod:`gateway.audit.api` because the console depends on the API module,
    not the other way round (no import cycle between the two).
    """
    for key, value in SETTINGS.items():
        app.config.setdefault(key, value)
    rest_api.register_blueprint(api.blp)
    init_pages(app)
