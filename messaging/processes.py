"""What the message hub adds to ``xsn run``: the SMS carrier simulator and the SMTP sink.

On their configured ports in ``xsn run`` (8010, 8025); a suite started on free ports (the
end-to-end tests) gets free ones for them too, handed to every process as
``XSN_MESSAGING_SMS_SIMULATOR_PORT`` / ``XSN_MESSAGING_SMTP_PORT`` (the hub reads the same
settings), so a test's hub never texts another run's simulator. A port given in the suite's
environment wins.
"""

from __future__ import annotations

import sys

from messaging import SETTINGS

PORTS = {"sms-simulator": int(SETTINGS["MESSAGING_SMS_SIMULATOR_PORT"]),
         "smtp-sink": int(SETTINGS["MESSAGING_SMTP_PORT"])}
_SETTING = {"sms-simulator": "MESSAGING_SMS_SIMULATOR_PORT", "smtp-sink": "MESSAGING_SMTP_PORT"}


def _port(suite, name: str) -> int:
    given = suite.env.get(f"XSN_{_SETTING[name]}")
    return int(given) if given else int(suite.ports.get(name, PORTS[name]))


def processes(suite) -> dict[str, list[str]]:
    return {"sms-simulator": [sys.executable, "-m", "messaging.sms_simulator",
                              "--port", str(_port(suite, "sms-simulator"))],
            "smtp-sink": [sys.executable, "-m", "messaging.smtp_sink", "--port", str(_port(suite, "smtp-sink")),
                          "--dir", str(suite.var_dir / "mail")]}


def env(suite) -> dict[str, str]:
    return {f"XSN_{setting}": str(_port(suite, name)) for name, setting in _SETTING.items()}


def summary(suite) -> list[str]:
    return ["", f"Message hub: SMS carrier simulator http://127.0.0.1:{_port(suite, 'sms-simulator')}"
                "/sim/messages · e-mail kept in var/mail (xsn messaging mail) · inbox page "
                f"{suite.base_url('gateway')}/messaging/me/inbox"]
