"""SMS carrier simulator: a separate process speaking the Aliyun ``SendSms`` protocol.

``POST /`` takes the RPC-style signed form (:mod:`messaging.channels.sms`), checks the
HMAC-SHA1 signature and the timestamp, applies per-number limits (verification codes 1/min,
5/hour, 10/day; other messages 50/day) answering ``isv.BUSINESS_LIMIT_CONTROL``, and answers
``{"Code": "OK", "BizId": ...}``. A moment later it pushes a delivery receipt (SmsReport JSON
array) to the hub, retrying at 1, 5 and 10 minutes (scaled by ``SIM_RECEIPT_RETRY``) until
the hub says ``{"code": 0}``.

For tests and newcomers: ``GET /sim/messages[?phone=]`` lists what arrived;
``POST /sim/failures {"phone": ..., "err_code": ..., "at": "send"|"receipt"}`` makes a number
fail (``DELETE /sim/failures`` clears). Run: ``python -m messaging.sms_simulator --port 8010``.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from flask import Flask, jsonify, request

from common import config as cfg
from messaging.channels import sms

CHINA = timezone(timedelta(hours=8))
CODE_LIMITS = ((60, 1), (3600, 5), (86400, 10))
NOTICE_LIMITS = ((86400, 50),)


class Carrier:
    def __init__(self, *, access_key_id: str, secret: str, receipt_url: str, receipt_token: str,
                 receipt_delay: float = 0.2, receipt_retry: tuple[float, ...] = (60, 300, 600)) -> None:
        self.access_key_id, self.secret = access_key_id, secret
        self.receipt_url, self.receipt_token = receipt_url, receipt_token
        self.receipt_delay, self.receipt_retry = receipt_delay, receipt_retry
        self.messages: list[dict[str, Any]] = []
        self.failures: dict[str, dict[str, str]] = {}
        self.sent_at: dict[str, deque[float]] = {}
        self.lock = threading.Lock()
        self.receipts: queue.Queue = queue.Queue()
        threading.Thread(target=self._push_receipts, daemon=True, name="receipts").start()

    def _limited(self, phone: str, template_code: str, now: float) -> bool:
        limits = CODE_LIMITS if "CODE" in template_code.upper() else NOTICE_LIMITS
        times = self.sent_at.setdefault(f"{phone}:{'code' if limits is CODE_LIMITS else 'notice'}", deque())
        while times and times[0] < now - 86400:
            times.popleft()
        if any(sum(1 for t in times if t > now - window) >= count for window, count in limits):
            return True
        times.append(now)
        return False

    def send_sms(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4()).upper()
        given = form.get("Signature", "")
        params = {k: v for k, v in form.items() if k != "Signature"}
        if params.get("AccessKeyId") != self.access_key_id:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found.",
                         "RequestId": request_id}
        if given != sms.signature(self.secret, "POST", params):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our "
                         "calculation.", "RequestId": request_id}
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return 400, {"Code": "MissingTimestamp", "Message": "Timestamp is malformed", "RequestId": request_id}
        if abs((datetime.now(UTC) - stamp).total_seconds()) > 900:
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "Timestamp expired", "RequestId": request_id}
        if params.get("Action") != "SendSms":
            return 400, {"Code": "InvalidAction.NotFound", "Message": "action not found", "RequestId": request_id}
        phones = [p for p in params.get("PhoneNumbers", "").split(",") if p]
        if not phones or len(phones) > 1000 or not all(p.isdigit() and len(p) == 11 for p in phones):
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": request_id}
        try:
            template_param = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return 200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法", "RequestId": request_id}
        now = time.time()
        with self.lock:
            for phone in phones:
                failure = self.failures.get(phone)
                if failure and failure.get("at") == "send":
                    return 200, {"Code": failure["err_code"], "Message": "simulated failure", "RequestId": request_id}
                if self._limited(phone, params.get("TemplateCode", ""), now):
                    return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发号码天级流控Permits:50",
                                 "RequestId": request_id}
            biz_id = f"{int(now * 1000)}^{uuid.uuid4().int % 10**10:010d}"
            for phone in phones:
                record = {"phone": phone, "sign_name": params.get("SignName"),
                          "template_code": params.get("TemplateCode"), "params": template_param,
                          "out_id": params.get("OutId"), "biz_id": biz_id,
                          "received_at": datetime.now(UTC).isoformat(), "receipt": None}
                self.messages.append(record)
                self.receipts.put((time.monotonic() + self.receipt_delay, 0, record))
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}

    def _report(self, record: dict[str, Any]) -> dict[str, Any]:
        failure = self.failures.get(record["phone"])
        failed = failure is not None and failure.get("at", "receipt") == "receipt"
        now = datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        return {"phone_number": record["phone"], "send_time": now, "report_time": now, "success": not failed,
                "err_code": failure["err_code"] if failed else "DELIVERED",
                "err_msg": "simulated failure" if failed else "用户接收成功", "sms_size": "1",
                "biz_id": record["biz_id"], "out_id": record["out_id"]}

    def _push_receipts(self) -> None:
        session = requests.Session()
        while True:
            due, tries, record = self.receipts.get()
            time.sleep(max(0.0, due - time.monotonic()))
            report = record["receipt"] or self._report(record)
            record["receipt"] = report
            try:
                response = session.post(self.receipt_url, json=[report], timeout=5,
                                        headers={"X-XSN-Receipt-Token": self.receipt_token})
                accepted = response.status_code == 200 and response.json().get("code") == 0
            except (requests.RequestException, ValueError):
                accepted = False
            if not accepted and tries < len(self.receipt_retry):
                self.receipts.put((time.monotonic() + self.receipt_retry[tries], tries + 1, record))


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    from messaging import SETTINGS, wiring

    app = Flask(__name__)
    app.config.from_mapping(cfg.defaults("messaging"))
    app.config.from_mapping(SETTINGS)
    app.config.from_mapping({"SIM_RECEIPT_DELAY": 0.2, "SIM_RECEIPT_RETRY": "60,300,600"})
    app.config.from_prefixed_env(cfg.ENV_PREFIX)
    app.config.from_mapping(overrides or {})
    hub = cfg.service_urls(app.config)["messaging"]
    carrier = Carrier(access_key_id=str(app.config["MESSAGING_SMS_ACCESS_KEY_ID"]),
                      secret=wiring.sms_secret(app.config),
                      receipt_url=f"{hub}/receipts/sms", receipt_token=wiring.receipt_token(app.config),
                      receipt_delay=float(app.config["SIM_RECEIPT_DELAY"]),
                      receipt_retry=wiring.floats(app.config["SIM_RECEIPT_RETRY"]))
    app.extensions["carrier"] = carrier

    @app.post("/")
    def send_sms():
        status, body = carrier.send_sms(request.form.to_dict())
        return jsonify(body), status

    @app.get("/sim/messages")
    def messages():
        phone = request.args.get("phone")
        with carrier.lock:
            return jsonify([m for m in carrier.messages if phone in (None, m["phone"])])

    @app.post("/sim/failures")
    def add_failure():
        body = request.get_json(silent=True) or {}
        if not isinstance(body.get("phone"), str) or not isinstance(body.get("err_code"), str):
            return jsonify({"error": "phone and err_code are needed"}), 400
        carrier.failures[body["phone"]] = {"err_code": body["err_code"], "at": body.get("at", "receipt")}
        return jsonify(carrier.failures)

    @app.delete("/sim/failures")
    def clear_failures():
        carrier.failures.clear()
        return jsonify({})

    @app.get("/livez")
    def livez():
        return jsonify({"status": "ok"})

    return app


def main(argv: list[str] | None = None) -> None:
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args(argv)
    server = make_server("127.0.0.1", args.port, create_app(), threaded=True)
    print(f"SMS carrier simulator on http://127.0.0.1:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
