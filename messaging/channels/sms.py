"""SMS through an Aliyun ``SendSms``-style carrier API (STANDARDS.md §8).

The request is Aliyun's RPC style: form parameters (``PhoneNumbers``, ``SignName``,
``TemplateCode``, ``TemplateParam`` JSON, ``OutId``) with the common parameters, signed
HMAC-SHA1 over the percent-encoded canonical query. The answer's ``Code`` is ``OK`` with a
``BizId``, or an error code; delivery receipts arrive later (:func:`parse_receipts`). SendSms
is not idempotent: the hub's attempt check is what keeps a send from repeating.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from sqlalchemy.orm import Session

from messaging.channels import Outcome, Outgoing

API_VERSION = "2017-05-25"
# Carrier codes meaning "this number will not get this message": fall back or give up.
PERMANENT = ("isv.BUSINESS_LIMIT_CONTROL", "isv.MOBILE_NUMBER_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL",
             "isv.SMS_SIGNATURE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.BLACK_KEY_CONTROL_LIMIT")


def percent_encode(value: str) -> str:
    return quote(value, safe="~")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def signature(secret: str, method: str, params: dict[str, str]) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def send_sms_params(access_key_id: str, secret: str, *, phone: str, sign_name: str, template_code: str,
                    template_param: dict[str, Any], out_id: str) -> dict[str, str]:
    params = {"AccessKeyId": access_key_id, "Action": "SendSms", "Format": "JSON", "RegionId": "cn-hangzhou",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex, "SignatureVersion": "1.0",
              "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "Version": API_VERSION,
              "PhoneNumbers": phone, "SignName": sign_name, "TemplateCode": template_code,
              "TemplateParam": json.dumps(template_param, ensure_ascii=False, separators=(",", ":")),
              "OutId": out_id}
    params["Signature"] = signature(secret, "POST", params)
    return params


class SmsChannel:
    commit_each = True
    name = "sms"

    def __init__(self, endpoint: str, access_key_id: str, access_key_secret: str, timeout: float = 10.0) -> None:
        self.endpoint, self.access_key_id, self.secret, self.timeout = endpoint, access_key_id, access_key_secret, \
            timeout
        self.http = requests.Session()

    def send(self, session: Session, item: Outgoing) -> Outcome:
        if not item.phone:
            return Outcome("failed", error="no_phone")
        params = send_sms_params(self.access_key_id, self.secret, phone=item.phone, sign_name=item.sign_name,
                                 template_code=item.content["template_code"], template_param=item.content["params"],
                                 out_id=f"{item.delivery_id}.{item.attempt}")
        try:
            response = self.http.post(self.endpoint, data=params, timeout=self.timeout)
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            return Outcome("retry", error=f"carrier unreachable: {type(exc).__name__}")
        code = str(body.get("Code", "")) if isinstance(body, dict) else ""
        if code == "OK" and body.get("BizId"):
            return Outcome("sent", provider_id=str(body["BizId"])[:64])
        if code in PERMANENT:
            return Outcome("failed", error=f"{code}: {str(body.get('Message', ''))[:150]}")
        return Outcome("retry", error=f"{code or response.status_code}: {str(body.get('Message', ''))[:150]}")

    def close(self) -> None:
        pass


def parse_receipts(body: Any) -> list[tuple[str, bool, str | None]]:
    """Aliyun SmsReport items -> ``(biz_id, success, error)``. :raise ValueError: not a list of reports."""
    if not isinstance(body, list) or len(body) > 1000:
        raise ValueError("a JSON array of at most 1000 reports is expected")
    reports = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("biz_id"), str) \
                or not isinstance(item.get("success"), bool):
            raise ValueError("each report needs biz_id (string) and success (boolean)")
        error = None if item["success"] else f"{item.get('err_code', 'UNKNOWN')}: {item.get('err_msg', '')}"[:255]
        reports.append((item["biz_id"][:64], item["success"], error))
    return reports
