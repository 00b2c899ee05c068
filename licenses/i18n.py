"""Texts of the licences pages (Chinese first, English with ``?lang=en``)."""

from __future__ import annotations

from common.web.i18n import COMMON_CATALOG

_REFUSALS_ZH = {
    "malformed_code": "核验码格式不正确", "code_too_large": "核验码过长", "unsupported_algorithm": "不支持的签名算法",
    "unknown_key": "签名密钥不在信任列表中", "signature_invalid": "签名验证失败（码已被篡改或伪造）",
    "code_expired": "核验码已过期，请持证人重新出示", "licence_not_valid": "证照已注销、吊销、暂停或被替换",
}
_REFUSALS_EN = {
    "malformed_code": "The code is malformed", "code_too_large": "The code is too long",
    "unsupported_algorithm": "Unsupported signature algorithm", "unknown_key": "Signed by a key not in the trust list",
    "signature_invalid": "The signature does not verify (altered or forged code)",
    "code_expired": "The code has expired; ask the holder for a fresh one",
    "licence_not_valid": "The licence is revoked, suspended or superseded",
}

CATALOG: dict[str, dict[str, str]] = {
    "zh": {**COMMON_CATALOG["zh"],
           "check.title": "电子证照核验", "check.intro": "粘贴或扫描持证人出示的证照码（以 XL1: 开头的离线码）。",
           "check.code": "证照码", "check.submit": "核验",
           "check.valid": "核验通过", "check.invalid": "核验未通过",
           "check.short": ("短授权码须由窗口业务系统使用核验令牌（licenses:verify）在线核验："
                           "授权码只对被授权的窗口有效。"),
           "check.fields": "授权查看的信息", "check.checks": "各项检查",
           "check.licence": "证照", "check.identifier": "证照标识", "check.face_number": "证照编号",
           "check.issuer": "颁发机构", "check.holder": "持证主体", "check.valid_until": "有效期至",
           "check.purpose": "用证事由", "check.expires": "码有效期至", "check.permanent": "长期",
           "check.beijing": "（北京时间）", "check.check_signature": "签名",
           "check.check_expiry": "码有效期", "check.check_status": "证照状态",
           "show.title": "出示证照", "show.intro": "请窗口工作人员扫描下方二维码，或输入授权码。",
           "show.intro_scan": "请窗口工作人员扫描下方二维码。",
           "show.code": "授权码", "show.none": "没有要出示的码。",
           **{f"refusal.{k}": v for k, v in _REFUSALS_ZH.items()}},
    "en": {**COMMON_CATALOG["en"],
           "check.title": "Verify an electronic licence",
           "check.intro": "Paste or scan the code the holder shows (an offline code starting with XL1:).",
           "check.code": "Licence code", "check.submit": "Verify",
           "check.valid": "Verified", "check.invalid": "Not verified",
           "check.short": "Short authorisation codes are verified online by the window's system with its "
                          "licenses:verify token: a code is valid only for the window it was given to.",
           "check.fields": "Fields the holder disclosed", "check.checks": "Checks",
           "check.licence": "Licence", "check.identifier": "Identifier", "check.face_number": "Licence number",
           "check.issuer": "Issued by", "check.holder": "Holder", "check.valid_until": "Valid until",
           "check.purpose": "Purpose", "check.expires": "Code valid until", "check.permanent": "no fixed term",
           "check.beijing": "(Beijing time)", "check.check_signature": "Signature",
           "check.check_expiry": "Code expiry", "check.check_status": "Licence status",
           "show.title": "Show a licence", "show.intro": "Let the window scan this QR code or type the code.",
           "show.intro_scan": "Let the window scan this QR code.",
           "show.code": "Code", "show.none": "Nothing to show.",
           **{f"refusal.{k}": v for k, v in _REFUSALS_EN.items()}},
}
