"""What the message hub adds to ``xsn run``: the SMS carrier simulator and the SMTP sink.

Started with the demo processes only (``xsn run``) on their configured ports (8010, 8025),
or whenever ``XSN_MESSAGING_SMS_SIMULATOR_PORT`` / ``XSN_MESSAGING_SMTP_PORT`` are given in the
suite's environment (a test on free ports); the messaging service reads the same settings.
"""

from __future__ import annotations

import sys

from messaging import SETTINGS


def _port(suite, key: str) -> int | None:
    value = suite.env.get(f"XSN_{key}")
    if value:
        return int(value)
    return int(SETTINGS[key]) if suite.demo_apps else None


def processes(suite) -> dict[str, list[str]]:
    found = {}
    sms = _port(suite, "MESSAGING_SMS_SIMULATOR_PORT")
    if sms:
        found["sms-simulator"] = [sys.executable, "-m", "messaging.sms_simulator", "--port", str(sms)]
    smtp = _port(suite, "MESSAGING_SMTP_PORT")
    if smtp:
        found["smtp-sink"] = [sys.executable, "-m", "messaging.smtp_sink", "--port", str(smtp),
                              "--dir", str(suite.var_dir / "mail")]
    return found


def summary(suite) -> list[str]:
    if not suite.demo_apps:
        return []
    return ["", f"Message hub: SMS carrier simulator http://127.0.0.1:{SETTINGS['MESSAGING_SMS_SIMULATOR_PORT']}"
                "/sim/messages · e-mail kept in var/mail (xsn messaging mail) · inbox page "
                f"{suite.base_url('gateway')}/messaging/me/inbox"]
