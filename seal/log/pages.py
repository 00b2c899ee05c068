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
        # A failed check's {reason} / {reasons} are stable codes, each worded below
        # (audit.reason.*), so no English message is set inside a Chinese sentence.
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
        "audit.detail.rejected": "未通过：{reason}",
        "audit.detail.signed": "由固定的日志公钥签名：来源 {origin}，树大小 {size}，根哈希 {root}",
        "audit.detail.canonical": "规范化 JSON（RFC 8785）",
        "audit.detail.not_canonical": "叶子不是规范化 JSON",
        "audit.detail.leaf_hash_mismatch": "所述叶子哈希不等于 SM3(0x00 || 叶子)",
        "audit.detail.not_included": "未包含在检查点中：{reason}",
        "audit.detail.included": "{hashes} 个哈希组成的审计路径通向检查点的根（树大小 {size}）",
        "audit.detail.ses_missing": "证据中没有此条目的 SES 签名",
        "audit.detail.ses_not_base64": "SES 签名不是 base64 编码",
        "audit.detail.digest_differs": "SES 签名的 SM3 与日志记录的 signature_digest 不符",
        "audit.detail.digest_matches": "SES 签名的 SM3 与日志记录的摘要一致",
        "audit.detail.ses_valid": "GB/T 38540 各项校验均通过",
        "audit.detail.ses_invalid": "未通过 GB/T 38540 校验：{reasons}",
        "audit.detail.range_outside": "所称范围 {claimed} 不在检查点的树内",
        "audit.detail.range_complete": "条目 [{start}, {end}) 均在，且各出现一次",
        "audit.detail.range_incomplete": "条目 [{start}, {end})：缺少 {missing}，多出 {extra}",
        "audit.detail.root_matches": "由全部条目重算的根与检查点一致",
        "audit.detail.root_differs": "由全部条目重算的根与检查点不同",
        "audit.detail.older_root_matches": "前 {size} 个条目重现了较早检查点的根",
        "audit.detail.older_root_differs": "前 {size} 个条目未能重现较早检查点的根",
        "audit.detail.older_larger": "较早检查点（树大小 {older}）大于证据中的检查点（树大小 {size}）",
        "audit.detail.no_consistency_proof": "证据中没有从树大小 {older} 到 {size} 的一致性证明",
        "audit.detail.not_extension": "日志不是较早检查点的延续：{reason}",
        "audit.detail.extends": "树大小 {size} 是树大小 {older} 的较早检查点的延续",
        # Why a check failed: common.crypto.signed_note.NoteError and common.crypto.merkle.ProofError
        # reasons, common.merkle_log.offline.BundleError's, and the SES checks' (seal.ses_verify
        # CHECK_NAMES, or the SESFormatError code of a signature that does not parse).
        "audit.reason_separator": "；",
        "audit.reason.malformed_control_character": "检查点含有控制字符",
        "audit.reason.malformed_key_name": "密钥名称格式不正确",
        "audit.reason.malformed_checkpoint_line": "检查点的来源行或扩展行格式不正确",
        "audit.reason.malformed_tree_size": "树大小不是规范的非负十进制整数",
        "audit.reason.malformed_root_hash": "根哈希的长度不正确",
        "audit.reason.malformed_newline": "检查点的行未以换行符正确结束",
        "audit.reason.malformed_too_few_lines": "检查点缺少来源、树大小或根哈希行",
        "audit.reason.malformed_base64": "根哈希或签名不是规范的 base64 编码",
        "audit.reason.malformed_utf8": "检查点不是有效的 UTF-8 文本",
        "audit.reason.malformed_no_blank_line": "签名行之前缺少空行",
        "audit.reason.malformed_no_signatures": "检查点没有签名行",
        "audit.reason.malformed_signature_line": "签名行格式不正确",
        "audit.reason.too_large": "检查点过大或签名过多",
        "audit.reason.no_signature_by_key": "没有固定的日志公钥所作的签名",
        "audit.reason.signature_invalid": "固定的日志公钥所作的签名验证失败",
        "audit.reason.origin_mismatch": "检查点的来源与证据中检查点的来源不同",
        "audit.reason.index_outside": "条目序号不在检查点的树内",
        "audit.reason.bad_hash_length": "哈希的长度不正确",
        "audit.reason.proof_too_long": "证明比所需的长",
        "audit.reason.proof_too_short": "证明比所需的短",
        "audit.reason.root_mismatch": "证明不能通向检查点的根",
        "audit.reason.old_root_mismatch": "证明不能重现较早检查点的根",
        "audit.reason.sizes_out_of_order": "较早的树大小大于较新的树大小",
        "audit.reason.not_hex": "证明中的哈希不是十六进制",
        "audit.reason.unreadable": "证据无法读取",
        "audit.reason.signature": "SM2 签名验证失败",
        "audit.reason.signer_in_seal": "签章人证书不在印章的证书列表中",
        "audit.reason.seal": "印章无效（制章者签名、有效期或状态）",
        "audit.reason.signer_certificate": "签章人证书无效（签发者、有效期或吊销状态）",
        "audit.reason.document_digest": "签名中的 dataHash 与文档摘要不符",
        "audit.reason.der_truncated": "DER 数据不完整",
        "audit.reason.der_wrong_tag": "DER 标签不符",
        "audit.reason.der_not_canonical": "不是规范的 DER 编码",
        "audit.reason.der_oversized": "DER 数据过长",
        "audit.reason.der_trailing_data": "DER 数据之后有多余的字节",
        "audit.reason.ses_malformed": "电子签章结构格式不正确",
        "audit.reason.ses_wrong_header": "印章头标识不是 ES",
        "audit.reason.ses_wrong_version": "印章版本不是 GB/T 38540 的第 4 版",
        "audit.reason.ses_wrong_oid": "签名算法不是 SM2 与 SM3",
        "audit.reason.cert_malformed": "证书格式不正确",
        "audit.reason.cert_wrong_oid": "证书的算法不是 SM2 与 SM3",
        "audit.reason.cert_wrong_curve": "证书的公钥不在 SM2 曲线上",
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
        "audit.detail.rejected": "rejected: {reason}",
        "audit.detail.signed": "signed by the pinned key: origin {origin}, size {size}, root {root}",
        "audit.detail.canonical": "canonical JSON (RFC 8785)",
        "audit.detail.not_canonical": "the leaf is not canonical JSON",
        "audit.detail.leaf_hash_mismatch": "the stated leaf hash is not SM3(0x00 || leaf)",
        "audit.detail.not_included": "not included in the checkpoint: {reason}",
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
        "audit.detail.not_extension": "the log is not an extension of the older checkpoint: {reason}",
        "audit.detail.extends": "size {size} extends the older checkpoint of size {older}",
        "audit.reason_separator": "; ",
        "audit.reason.malformed_control_character": "the checkpoint contains a control character",
        "audit.reason.malformed_key_name": "a key name is malformed",
        "audit.reason.malformed_checkpoint_line": "an origin or extension line of the checkpoint is malformed",
        "audit.reason.malformed_tree_size": "the tree size is not a canonical non-negative decimal",
        "audit.reason.malformed_root_hash": "the root hash has the wrong length",
        "audit.reason.malformed_newline": "a line of the checkpoint does not end with a newline as it should",
        "audit.reason.malformed_too_few_lines": "the checkpoint lacks its origin, size or root hash line",
        "audit.reason.malformed_base64": "the root hash or a signature is not canonical base64",
        "audit.reason.malformed_utf8": "the checkpoint is not UTF-8 text",
        "audit.reason.malformed_no_blank_line": "no blank line before the signatures",
        "audit.reason.malformed_no_signatures": "the checkpoint has no signature lines",
        "audit.reason.malformed_signature_line": "a signature line is malformed",
        "audit.reason.too_large": "the checkpoint is too large or has too many signatures",
        "audit.reason.no_signature_by_key": "no signature by the pinned log key",
        "audit.reason.signature_invalid": "the signature by the pinned log key does not verify",
        "audit.reason.origin_mismatch": "the checkpoint's origin differs from the bundle checkpoint's",
        "audit.reason.index_outside": "the entry's index is outside the checkpoint's tree",
        "audit.reason.bad_hash_length": "a hash has the wrong length",
        "audit.reason.proof_too_long": "the proof is longer than needed",
        "audit.reason.proof_too_short": "the proof is shorter than needed",
        "audit.reason.root_mismatch": "the proof does not lead to the checkpoint's root",
        "audit.reason.old_root_mismatch": "the proof does not reproduce the older checkpoint's root",
        "audit.reason.sizes_out_of_order": "the older tree size is larger than the newer",
        "audit.reason.not_hex": "a hash of the proof is not hex",
        "audit.reason.unreadable": "the evidence cannot be read",
        "audit.reason.signature": "the SM2 signature does not verify",
        "audit.reason.signer_in_seal": "the signer certificate is not in the seal's certificate list",
        "audit.reason.seal": "the seal is not valid (maker signature, validity or status)",
        "audit.reason.signer_certificate": "the signer certificate is not valid (issuer, validity or revocation)",
        "audit.reason.document_digest": "the signature's dataHash differs from the document digest",
        "audit.reason.der_truncated": "the DER is truncated",
        "audit.reason.der_wrong_tag": "a DER tag is not the expected one",
        "audit.reason.der_not_canonical": "not canonical DER",
        "audit.reason.der_oversized": "the DER is too long",
        "audit.reason.der_trailing_data": "bytes follow the end of the DER",
        "audit.reason.ses_malformed": "the electronic seal structure is malformed",
        "audit.reason.ses_wrong_header": "the seal header is not ES",
        "audit.reason.ses_wrong_version": "the seal version is not 4 (GB/T 38540)",
        "audit.reason.ses_wrong_oid": "the signature algorithm is not SM2 with SM3",
        "audit.reason.cert_malformed": "a certificate is malformed",
        "audit.reason.cert_wrong_oid": "a certificate's algorithm is not SM2 with SM3",
        "audit.reason.cert_wrong_curve": "a certificate's key is not on the SM2 curve",
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


@bp.app_template_global("audit_step_detail")
def step_detail(step: dict) -> str:
    """A verification step's detail in the page's language (``step``: a ``Step.to_dict()``).

    A failed check's ``reason`` and ``reasons`` are codes, worded here too: the English
    message of the exception behind them is the CLI's (``detail``), not the page's.
    """
    if not step.get("code"):
        return step["detail"]
    params = dict(step["params"])
    if "reason" in params:
        params["reason"] = _(f"audit.reason.{params['reason']}")
    if "reasons" in params:
        params["reasons"] = _("audit.reason_separator").join(_(f"audit.reason.{code}") for code in params["reasons"])
    return _(f"audit.detail.{step['code']}", **params)


def init_pages(app: Flask) -> None:
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
    app.register_blueprint(login_bp)
