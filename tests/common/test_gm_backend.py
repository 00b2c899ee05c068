"""Choosing the GM backend: ``XSN_GM_BACKEND``, the fallback to the pure-Python gmssl when tongsuopy
is missing (warned once), and production refusing to sign on it unless it is asked for by name."""

from __future__ import annotations

import pytest
import structlog

from common.crypto.gm import GMError, _backend, backend_name, check_backend, use_backend


@pytest.fixture
def no_tongsuopy(monkeypatch):
    """A host where tongsuopy cannot be imported (Linux aarch64 has no wheel)."""
    real = _backend._load

    def load(name):
        if name == "tongsuopy":
            raise GMError("GM backend 'tongsuopy' is not installed: No module named 'tongsuopy'",
                          code="gm_backend_unavailable")
        return real(name)

    monkeypatch.setattr(_backend, "_load", load)
    monkeypatch.delenv("XSN_GM_BACKEND", raising=False)
    monkeypatch.delenv("XSN_ENV", raising=False)
    use_backend(None)
    yield
    use_backend(None)


def test_production_without_tongsuopy_refuses_with_a_clear_message(no_tongsuopy):
    with pytest.raises(GMError) as caught:
        check_backend("production")
    assert caught.value.code == "gm_backend_refused"
    assert "XSN_GM_BACKEND=gmssl" in caught.value.message and "tongsuopy" in caught.value.message
    assert _backend._current is None  # nothing chosen: a later call refuses again


def test_production_reads_xsn_env_on_first_use_too(no_tongsuopy, monkeypatch):
    monkeypatch.setenv("XSN_ENV", "production")
    with pytest.raises(GMError, match="refusing"):
        backend_name()


def test_production_runs_on_gmssl_when_asked_by_name(no_tongsuopy, monkeypatch):
    monkeypatch.setenv("XSN_GM_BACKEND", "gmssl")
    assert check_backend("production") == "gmssl"


def test_outside_production_the_fallback_is_used(no_tongsuopy):
    assert check_backend("embedded") == "gmssl"


def test_production_with_tongsuopy_starts():
    pytest.importorskip("tongsuopy")
    use_backend(None)
    try:
        assert check_backend("production") == "tongsuopy"
    finally:
        use_backend(None)


def test_a_production_app_refuses_to_start(no_tongsuopy, make_app):
    with pytest.raises(GMError, match="XSN_GM_BACKEND=gmssl"):
        make_app("payment", ENV="production", KEK="00" * 16, SECRET_KEY="s" * 32)


def test_backend_forced_by_environment(monkeypatch):
    monkeypatch.setenv("XSN_GM_BACKEND", "gmssl")
    use_backend(None)
    try:
        assert backend_name() == "gmssl"
        monkeypatch.setenv("XSN_GM_BACKEND", "tongsuopy")
        use_backend(None)
        assert backend_name() == "tongsuopy"
        monkeypatch.setenv("XSN_GM_BACKEND", "openssl")
        use_backend(None)
        with pytest.raises(GMError) as info:
            backend_name()
        assert info.value.code == "gm_backend_unavailable"
    finally:
        monkeypatch.delenv("XSN_GM_BACKEND")
        use_backend(None)
    assert backend_name() == "tongsuopy"


def test_gmssl_warning_is_logged_once(monkeypatch):
    monkeypatch.setattr(_backend, "_gmssl_warned", False)
    try:
        with structlog.testing.capture_logs() as logs:
            use_backend("gmssl")
            use_backend("gmssl")
    finally:
        use_backend(None)
    assert [entry["event"] for entry in logs] == ["gm_backend_gmssl"]
    assert logs[0]["log_level"] == "warning"


def test_fallback_to_gmssl_when_tongsuopy_missing(monkeypatch):
    real_load = _backend._load

    def load(name):
        if name == "tongsuopy":
            raise GMError("no wheel", code="gm_backend_unavailable")
        return real_load(name)

    monkeypatch.setattr(_backend, "_load", load)
    monkeypatch.delenv("XSN_GM_BACKEND", raising=False)
    use_backend(None)
    try:
        assert backend_name() == "gmssl"
    finally:
        use_backend(None)
