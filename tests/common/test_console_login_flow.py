"""common.web.console_login.flow: a rejected token is logged by its error's type, not its words."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from common.oidc_client import InvalidIDToken
from common.web.console_login import flow


def test_a_rejected_token_logs_the_error_type_never_its_message(monkeypatch):
    # An ID-token check's message may quote a claim (a name, an ID number).
    class Provider:
        def verify_id_token(self, *_args, **_kwargs):
            raise InvalidIDToken("the name claim 张三 110101199003077777 is not expected", ["name"])

    monkeypatch.setattr(flow, "provider", Provider)
    console = flow.Console("test_console", "xsn-test-console", ("openid",), "index")
    with capture_logs() as captured, pytest.raises(flow.ConsoleLoginFailed) as failed:
        flow.verify_tokens(console, {"id_token": "x", "access_token": "y"}, "nonce")
    assert failed.value.message_key == "console.failed.token"
    assert captured == [{"event": "console_token_rejected", "log_level": "warning", "console": "test_console",
                         "error_type": "InvalidIDToken"}]
