"""Auditor console (审计控制台): search the signature log, open an entry, see its proof checked.

Server-rendered, usable without JavaScript. Auditors sign in separately, with their own
identity account (OpenID Connect, :mod:`common.web.console_login`); the console's access token
must carry ``audit:read`` (identity grants it to the auditor role) and is re-verified on
every page view (fail closed). The proof shown on an entry page is checked server-side with
the very functions the offline CLI uses (:mod:`seal.log.verify_offline`), each step listed.
Every console view is recorded in ``audit_queries`` like an API call, under the auditor's
subject.
"""

from __future__ import annotations

import functools
import json

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for

from common.db import get_db, get_session
from common.errors import Problem
from common.web.audit import audit_requests
from common.web.console_login import console_required, make_console_login
from common.web.i18n import _, init_i18n
from common.web.pages import html_errors, protect
from seal.config import CONSOLE_CLIENT_ID
from seal.log import entries, verify_offline
from seal.log.api import AUDIT_SCOPE, settings
from seal.log.audit_queries import AuditQueryStore
from seal.log.schemas import SearchArgs
from seal.log.service import checkpoint_dict, entry_dict, entry_with_proof, keys_document, latest

bp = html_errors(protect(Blueprint("seal_audit", __name__, url_prefix="/audit")), back="seal_audit.index",
                 back_text="audit.back")
CONSOLE = "seal_audit_login"
login_bp = make_console_login(CONSOLE, client_id=CONSOLE_CLIENT_ID, scopes=("openid", "profile", AUDIT_SCOPE),
                              on_success_endpoint="seal_audit.index", url_prefix="/audit",
                              base_template="seal/audit_base.html")
SEARCH_FIELDS = ("seal_code", "org_code", "signer", "document_digest", "since", "until")

CATALOG = {
    "zh": {
        "audit.title": "签章日志审计控制台",
        "audit.checkpoint": "最新检查点",
        "audit.leaf_hash": "叶子哈希",
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
        # The verification steps (seal.log.verify_offline: each step's kind, its detail's code).
        # The English reason a check failed with ({error}, {reasons}) is left to the English
        # page rather than set inside a Chinese sentence.
        "audit.step.entry": "条目 {index}：{kind}",
        "audit.step.checkpoint_signature": "检查点签名",
        "audit.step.older_checkpoint_signature": "较早检查点签名",
        "audit.step.leaf": "叶子",
        "audit.step.leaf_hash": "叶子哈希",
        "audit.step.inclusion": "包含证明",
        "audit.step.signature_digest": "签名摘要",
        "audit.step.ses_signature": "SES 电子签章签名",
        "audit.step.range": "范围",
        "audit.step.full_range": "完整范围",
        "audit.step.consistency": "一致性",
        "audit.detail.rejected": "未通过：检查点无法读取，或其签名不能由固定的日志公钥验证",
        "audit.detail.signed": "由固定的日志公钥签名：来源 {origin}，树大小 {size}，根哈希 {root}",
        "audit.detail.canonical": "规范化 JSON（RFC 8785）",
        "audit.detail.not_canonical": "叶子不是规范化 JSON",
        "audit.detail.leaf_hash_mismatch": "所述叶子哈希不等于 SM3(0x00 || 叶子)",
        "audit.detail.not_included": "未包含在检查点中：审计路径不能通向检查点的根",
        "audit.detail.included": "{hashes} 个哈希组成的审计路径通向检查点的根（树大小 {size}）",
        "audit.detail.ses_missing": "证据中没有此条目的 SES 签名",
        "audit.detail.ses_not_base64": "SES 签名不是 base64 编码",
        "audit.detail.digest_differs": "SES 签名的 SM3 与日志记录的 signature_digest 不符",
        "audit.detail.digest_matches": "SES 签名的 SM3 与日志记录的摘要一致",
        "audit.detail.ses_valid": "GB/T 38540 各项校验均通过",
        "audit.detail.ses_invalid": "未通过 GB/T 38540 校验",
        "audit.detail.range_outside": "所称范围 {claimed} 不在检查点的树内",
        "audit.detail.range_complete": "条目 [{start}, {end}) 均在，且各出现一次",
        "audit.detail.range_incomplete": "条目 [{start}, {end})：缺少 {missing}，多出 {extra}",
        "audit.detail.root_matches": "由全部条目重算的根与检查点一致",
        "audit.detail.root_differs": "由全部条目重算的根与检查点不同",
        "audit.detail.older_root_matches": "前 {size} 个条目重现了较早检查点的根",
        "audit.detail.older_root_differs": "前 {size} 个条目未能重现较早检查点的根",
        "audit.detail.older_larger": "较早检查点（树大小 {older}）大于证据中的检查点（树大小 {size}）",
        "audit.detail.no_consistency_proof": "证据中没有从树大小 {older} 到 {size} 的一致性证明",
        "audit.detail.not_extension": "日志不是较早检查点的延续：一致性证明不成立",
        "audit.detail.extends": "树大小 {size} 是树大小 {older} 的较早检查点的延续",
    },
    "en": {
        "audit.title": "Signature log audit console",
        "audit.checkpoint": "Latest checkpoint",
        "audit.leaf_hash": "Leaf hash",
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
        "audit.step.entry": "entry {index}: {kind}",
        "audit.step.checkpoint_signature": "checkpoint signature",
        "audit.step.older_checkpoint_signature": "older checkpoint signature",
        "audit.step.leaf": "leaf",
        "audit.step.leaf_hash": "leaf hash",
        "audit.step.inclusion": "inclusion",
        "audit.step.signature_digest": "signature digest",
        "audit.step.ses_signature": "SES signature",
        "audit.step.range": "range",
        "audit.step.full_range": "full range",
        "audit.step.consistency": "consistency",
        "audit.detail.rejected": "rejected: {error}",
        "audit.detail.signed": "signed by the pinned key: origin {origin}, size {size}, root {root}",
        "audit.detail.canonical": "canonical JSON (RFC 8785)",
        "audit.detail.not_canonical": "the leaf is not canonical JSON",
        "audit.detail.leaf_hash_mismatch": "the stated leaf hash is not SM3(0x00 || leaf)",
        "audit.detail.not_included": "not included in the checkpoint: {error}",
        "audit.detail.included": "audit path of {hashes} hashes leads to the checkpoint root (size {size})",
        "audit.detail.ses_missing": "the bundle carries no SES signature for this entry",
        "audit.detail.ses_not_base64": "the SES signature is not base64",
        "audit.detail.digest_differs": "SM3 of the SES signature differs from the logged signature_digest",
        "audit.detail.digest_matches": "SM3 of the SES signature matches the logged digest",
        "audit.detail.ses_valid": "all GB/T 38540 checks pass",
        "audit.detail.ses_invalid": "fails: {reasons}",
        "audit.detail.range_outside": "the claimed range {claimed} is not within the checkpoint's tree",
        "audit.detail.range_complete": "entries [{start}, {end}) are all present, once each",
        "audit.detail.range_incomplete": "entries [{start}, {end}): missing {missing}, unexpected {extra}",
        "audit.detail.root_matches": "the root recomputed from all entries matches the checkpoint",
        "audit.detail.root_differs": "the root recomputed from all entries differs from the checkpoint",
        "audit.detail.older_root_matches": "the first {size} entries reproduce the older checkpoint's root",
        "audit.detail.older_root_differs": "the first {size} entries do not reproduce the older checkpoint's root",
        "audit.detail.older_larger": "the older checkpoint (size {older}) is larger than the bundle's (size {size})",
        "audit.detail.no_consistency_proof": "the bundle has no consistency proof from size {older} to {size}",
        "audit.detail.not_extension": "the log is not an extension of the older checkpoint: {error}",
        "audit.detail.extends": "size {size} extends the older checkpoint of size {older}",
    },
}


def auditor_required(view):
    """Signed in to the auditor console with ``audit:read``; the auditor is recorded as subject."""

    @console_required(CONSOLE, AUDIT_SCOPE)
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.subject, g.client_id = g.console_claims.get("sub"), g.console_claims.get("client_id")
        return view(*args, **kwargs)

    return wrapper


def _console_caller() -> tuple[str | None, str | None]:
    # A signed-in person refused for want of audit:read is recorded too (outcome "denied"):
    # the refusal is raised before auditor_required sets g.subject, so the verified claims of
    # the console session name them.
    claims = g.get("console_claims") or {}
    return g.get("subject") or claims.get("sub"), g.get("client_id") or claims.get("client_id")


def _audited_view() -> str | None:
    """The search and entry views of a signed-in person are audited; sign-in and assets are not."""
    if request.endpoint in ("seal_audit.index", "seal_audit.entry") and _console_caller()[0]:
        return f"console.{request.endpoint.split('.')[-1]}"
    return None


audit_requests(bp, lambda: AuditQueryStore(get_db()), event_type=_audited_view, caller=_console_caller)


def _parse_search() -> tuple[dict, str | None]:
    """Validate the search form with the API's schema; returns (args, error message)."""
    raw = {k: v.strip() for k, v in request.args.items() if v.strip() and k in (*SEARCH_FIELDS, "page")}
    for name in ("since", "until"):  # a time typed without an offset is Beijing time
        if name in raw and len(raw[name]) <= 19:
            raw[name] += "+08:00"
    errors = SearchArgs().validate(raw)
    if errors:
        return {}, _("audit.bad_query", detail="; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in errors.items()))
    return SearchArgs().load(raw), None


@bp.route("/")
@auditor_required
def index():
    db_session = get_session()
    checkpoint = latest(db_session, settings())
    args, error = _parse_search()
    rows, total = [], 0
    if not error:
        query = entries.SearchQuery(**{k: args.get(k) for k in SEARCH_FIELDS})
        rows, total = entries.search_entries(db_session, query, page=args["page"], per_page=args["per_page"])
    found = [entry_dict(e) for e in rows]
    page = args.get("page", 1)
    return render_template("seal/audit_index.html", checkpoint=checkpoint_dict(checkpoint), entries=found,
                           total=total, page=page, has_next=page * args.get("per_page", 20) < total,
                           form=request.args, error=error, fields=SEARCH_FIELDS)


@bp.route("/entries/<bigint:index>")
@auditor_required
def entry(index: int):
    db_session = get_session()
    try:
        bundle = entry_with_proof(db_session, settings(), index)
    except Problem as exc:
        flash(exc.detail)
        return redirect(url_for("seal_audit.index"))
    # Check it as an auditor would offline: against every published log key, pinned here
    # from the key store rather than taken from the evidence.
    keys = keys_document(db_session, settings())["keys"]
    key = next(k for k in keys if k["key_id"] == bundle["checkpoint"]["key_id"])
    report = verify_offline.verify_bundle(bundle, key["public_key_pem"])
    return render_template("seal/audit_entry.html", bundle=bundle, report=report.to_dict(),
                           event_json=json.dumps(bundle["entry"]["event"], ensure_ascii=False, indent=2))


def init_pages(app: Flask) -> None:
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
    app.register_blueprint(login_bp)
