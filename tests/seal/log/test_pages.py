"""The auditor console: sign in through identity (audit:read), search, open an entry, see its proof checked."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from common.crypto.gm import sm3
from common.db import get_db
from seal.console_models import ConsoleSession
from seal.log import appends
from seal.log.models import AuditQuery
from tests.support.console import GATEWAY, WANG


@pytest.fixture
def console_app(make_app, identity, material):
    app = make_app("seal", PUBLIC_BASE_URL=GATEWAY, IDENTITY_URL=identity.url, SEAL_LOG_CHECKPOINT_INTERVAL=0)
    with get_db(app).session() as session:
        for i in range(4):
            appends.append_event(session, {
                "type": "sign", "time": f"2026-08-01T02:00:0{i}Z", "seal_id": "s1",
                "seal_code": "6101260200000001" if i % 2 else "6101260200000002", "org_code": "91610113MA6TXX0010",
                "signer": "svc-licenses", "client_id": "xsn-licenses", "document_digest": material.digest.hex(),
                "signature_digest": sm3(material.signature_der).hex(), "request_id": f"r{i}"},
                ses_der=material.signature_der)
        session.commit()
    return app


@pytest.fixture
def app(console_app):
    return console_app


class Auditor:
    """王五 (auditor role) signed in to the auditor console through identity; paths under ``/seal``."""

    def __init__(self, browser, app) -> None:
        self.browser = browser
        status, page = browser.sign_in("/audit/", WANG)
        assert status == 200 and "签章日志审计控制台" in page
        with get_db(app).session() as session:
            self.sub = session.scalars(select(ConsoleSession.subject)).one()

    def get(self, path: str) -> str:
        return self.browser.go(f"{GATEWAY}/seal{path}")[1]

    def request(self, path: str):
        return self.browser.request("GET", f"{GATEWAY}/seal{path}")


@pytest.fixture
def browser(gateway_browser, app):
    return Auditor(gateway_browser(), app)


def test_console_requires_sign_in(app):
    client = app.test_client()
    assert client.get("/audit/").headers["Location"].startswith("/audit/login?next=")
    assert client.get("/audit/entries/0").headers["Location"].startswith("/audit/login?next=")


def test_a_person_without_audit_read_is_refused_and_recorded(app, gateway_browser):
    from tests.support.console import ZHANG

    status, page = gateway_browser().sign_in("/audit/", ZHANG)
    assert status == 403 and "audit:read" in page and "没有权限" in page
    assert "审计员" not in page  # the header does not call the refused person an auditor
    with get_db(app).session() as session:
        subject = session.scalars(select(ConsoleSession.subject)).one()
        [row] = session.scalars(select(AuditQuery)).all()
    assert (row.subject, row.action, row.status, row.outcome) == (subject, "console.index", 403, "denied")


def test_search_and_open_an_entry_with_its_proof_checked(app, browser):
    html = browser.get("/audit/?seal_code=6101260200000001")
    assert "签章日志审计控制台" in html
    assert "检索结果（共 2 条）" in html
    assert 'href="/seal/audit/entries/3"' in html and 'href="/seal/audit/entries/1"' in html
    assert 'href="/seal/audit/entries/2"' not in html
    entry = browser.get("/audit/entries/3")
    assert "全部校验通过" in entry
    for step in ("检查点签名", "条目 3：包含证明", "条目 3：签名摘要", "条目 3：SES 电子签章签名",
                 "GB/T 38540 各项校验均通过", "SES 签名的 SM3 与日志记录的摘要一致"):
        assert step in entry
    assert "checkpoint signature" not in entry and "matches the logged digest" not in entry
    assert entry.count("✘") == 0
    english = browser.get("/audit/entries/3?lang=en")
    assert "Every check passed" in english and "Inclusion proof" in english
    for step in ("checkpoint signature", "entry 3: inclusion", "entry 3: SES signature", "all GB/T 38540 checks pass"):
        assert step in english


def test_a_tampered_entry_shows_the_failed_step(app, browser):
    with get_db(app).engine.begin() as conn:
        conn.execute(text("UPDATE log_entries SET leaf = replace(leaf, 'r2', 'rX') WHERE leaf_index = 2"))
    html = browser.get("/audit/entries/2")
    assert "存在未通过的校验" in html
    assert "✘" in html and "条目 2：叶子哈希" in html and "所述叶子哈希不等于 SM3(0x00 || 叶子)" in html
    assert "the stated leaf hash is not SM3(0x00 || leaf)" in browser.get("/audit/entries/2?lang=en")


def test_every_step_and_detail_the_verifier_reports_is_in_both_languages():
    import re
    from pathlib import Path

    from common.merkle_log import offline
    from seal.log import pages, verify_offline

    # The seal's own checks, and the checkpoint and consistency checks it shares with the gateway.
    source = Path(verify_offline.__file__).read_text() + Path(offline.__file__).read_text()
    codes = set(re.findall(r'code="(\w+)"', source))
    codes |= {c for pair in re.findall(r'code="(\w+)" if [\w.()]+ else "(\w+)"', source) for c in pair}
    assert len(codes) >= 24, sorted(codes)  # the pattern still finds them
    for language in ("zh", "en"):
        catalogue = pages.CATALOG[language]
        assert not [k for k in verify_offline.KINDS if f"audit.step.{k}" not in catalogue], language
        assert not [c for c in codes if f"audit.detail.{c}" not in catalogue], language


# A Latin word, a space or punctuation, another Latin word: an English phrase. Chinese details
# may name SM2, SES, DER, GB/T 38540 or dataHash, never say a sentence in English.
ENGLISH_PHRASE = r"[A-Za-z]{2,}[ ,:;']+[A-Za-z]{2,}"


def _step_rows(html: str) -> list[str]:
    import re

    return [re.sub(r"<[^>]+>", " ", row) for row in re.findall(r'<tr class="step">(.*?)</tr>', html, re.S)]


def test_every_reason_a_check_can_fail_with_is_worded_in_both_languages():
    import re
    from pathlib import Path

    from common.crypto import merkle, signed_note
    from common.merkle_log import offline
    from seal import asn1, ca, ses, ses_verify
    from seal.log import pages

    # Every reason code the note, proof and bundle checks raise, every SESFormatError code and
    # every SES check's name (the reasons of ses_invalid).
    source = "".join(Path(m.__file__).read_text() for m in (signed_note, merkle, offline))
    reasons = set(re.findall(r'reason="(\w+)"', source))
    assert len(reasons) >= 20, sorted(reasons)  # the pattern still finds them
    # Raised with code="..." or renamed on the way (seal.ca: exc.code = "cert_malformed").
    ses_codes = set(re.findall(r'\bcode\s*=\s*"(\w+)"',
                               "".join(Path(m.__file__).read_text() for m in (asn1, ca, ses))))
    assert {"der_truncated", "ses_wrong_header", "cert_malformed"} <= ses_codes  # the pattern still finds them
    codes = reasons | ses_codes | {"unreadable"} | set(ses_verify.CHECK_NAMES)
    for language in ("zh", "en"):
        catalogue = pages.CATALOG[language]
        assert not [c for c in codes if f"audit.reason.{c}" not in catalogue], language
    chinese = [text for key, text in pages.CATALOG["zh"].items() if key.startswith(("audit.detail.", "audit.reason."))]
    assert not [text for text in chinese if re.search(ENGLISH_PHRASE, text)]


def _tampered_entry(monkeypatch, change):
    from seal.log import pages, service

    def entry_with_proof(*args, **kwargs):
        bundle = service.entry_with_proof(*args, **kwargs)
        change(bundle)
        return bundle

    monkeypatch.setattr(pages, "entry_with_proof", entry_with_proof)


def _forged_note(bundle):
    note = bundle["checkpoint"]["note"]
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # the size: the signature no longer covers the body
    bundle["checkpoint"]["note"] = "\n".join(lines)


def _wrong_proof(bundle):
    bundle["inclusion_proof"][0] = "00" * 32


@pytest.mark.parametrize(("change", "chinese", "english"), [
    (_forged_note, "未通过：固定的日志公钥所作的签名验证失败",
     "rejected: the signature by the pinned log key does not verify"),
    (_wrong_proof, "未包含在检查点中：证明不能通向检查点的根",
     "not included in the checkpoint: the proof does not lead to the checkpoint's root"),
])
def test_a_failed_check_says_why_in_the_page_s_language(browser, monkeypatch, change, chinese, english):
    import re

    _tampered_entry(monkeypatch, change)
    html = browser.get("/audit/entries/3")
    assert "存在未通过的校验" in html and chinese in html
    rows = _step_rows(html)
    assert rows and not [row for row in rows if re.search(ENGLISH_PHRASE, row)]
    assert english in browser.get("/audit/entries/3?lang=en").replace("&#39;", "'")


def test_a_signature_over_another_document_says_why_in_chinese(app, browser, material):
    import re

    with get_db(app).session() as session:
        appends.append_event(session, {
            "type": "sign", "time": "2026-08-01T02:00:09Z", "seal_id": "s1", "seal_code": "6101260200000001",
            "org_code": "91610113MA6TXX0010", "signer": "svc-licenses", "client_id": "xsn-licenses",
            "document_digest": sm3(b"another document").hex(), "signature_digest": sm3(material.signature_der).hex(),
            "request_id": "r9"}, ses_der=material.signature_der)
        session.commit()
    html = browser.get("/audit/entries/4")
    assert "未通过 GB/T 38540 校验：签名中的 dataHash 与文档摘要不符" in html
    assert not [row for row in _step_rows(html) if re.search(ENGLISH_PHRASE, row)]
    assert "fails: the signature's dataHash differs from the document digest" in browser.get(
        "/audit/entries/4?lang=en").replace("&#39;", "'")


def test_a_broken_consistency_proof_says_why_in_chinese(app):
    from common.merkle_log.offline import Report, Step
    from seal.log import pages

    # The console checks no older checkpoint; the offline page words the step all the same.
    report = Report({"consistency": "consistency"})
    report.add("consistency", False, "the log is not an extension of the older checkpoint: consistency proof is "
               "shorter than needed", code="not_extension", reason="proof_too_short")
    [step] = [Step.to_dict(s) for s in report.steps]
    with app.test_request_context("/audit/?lang=zh"):
        assert pages.step_detail(step) == "日志不是较早检查点的延续：证明比所需的短"
    with app.test_request_context("/audit/?lang=en"):
        assert pages.step_detail(step) == "the log is not an extension of the older checkpoint: the proof is " \
                                          "shorter than needed"


def test_bad_search_input_is_explained_and_console_views_are_audited(app, browser, identity):
    html = browser.get("/audit/?document_digest=xyz")
    assert "检索条件有误" in html
    browser.get("/audit/?since=2026-08-01T10:00:01")  # Beijing time: 02:00:01 UTC
    token = identity.machine_token("audit:read")
    api = app.test_client().get("/log/audit-queries", headers={"Authorization": f"Bearer {token}"}).get_json()
    console = [q for q in api["items"] if q["action"].startswith("console.")]
    assert {q["subject"] for q in console} == {browser.sub}
    assert len(console) == 3  # the page the sign-in landed on, then the two searches


def test_unknown_entry_goes_back_to_the_search(browser):
    status, location, _ = browser.request("/audit/entries/99")
    assert status == 302 and location.endswith("/seal/audit/")


def test_sign_out(browser):
    html = browser.get("/audit/")
    # The consoles' shared frame (common/web/templates/console/base.html) and wording.
    assert '<form method="post" action="/seal/audit/logout"' in html and ">退出</button>" in html
    assert ">Sign out</button>" in browser.get("/audit/?lang=en")
    status, location, _ = browser.browser.request("POST", f"{GATEWAY}/seal/audit/logout",
                                                  {"csrf_token": browser.browser.csrf(html)})
    assert status == 302 and "/identity/oauth/logout?" in location
    status, location, _ = browser.request("/audit/")
    assert status == 302 and location.startswith("/seal/audit/login")


def test_a_failure_inside_a_page_is_an_error_page_not_a_problem_document(browser, monkeypatch):
    from seal.log import pages

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug's own words")

    monkeypatch.setattr(pages, "latest", broken)
    status, page = browser.browser.go(f"{GATEWAY}/seal/audit/")
    assert status == 500 and 'data-code="internal_error"' in page and "请求编号" in page
    assert "返回检索" in page and "a bug" not in page
