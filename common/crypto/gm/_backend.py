"""Choice of the SM2 backend: tongsuopy when importable, else gmssl with a warning.

The choice is made on first use, not at import, so ``XSN_GM_BACKEND`` set by a
test or a service's environment is honoured; :func:`use_backend` overrides it.

In production (``XSN_ENV=production``) the gmssl fallback is refused unless asked for by
name (``XSN_GM_BACKEND=gmssl``): on an ARM server without tongsuopy's wheel a node must not
silently sign at 1/20 of the speed with a non-constant-time implementation. Every app
calls :func:`check_backend` at start-up, so such a node refuses to start, saying why.
"""

from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType

import structlog

from .errors import GMError

ENV_VAR = "XSN_GM_BACKEND"
DEPLOYMENT_ENV_VAR = "XSN_ENV"
BACKENDS = ("tongsuopy", "gmssl")

_MODULES = {"tongsuopy": "._tongsuopy_backend", "gmssl": "._gmssl_backend"}

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_current: ModuleType | None = None
_gmssl_warned = False


def _load(name: str) -> ModuleType:
    global _gmssl_warned
    if name not in _MODULES:
        raise GMError(
            f"unknown GM backend {name!r}; expected one of {', '.join(BACKENDS)}",
            code="gm_backend_unavailable",
        )
    try:
        module = importlib.import_module(_MODULES[name], __package__)
    except ImportError as exc:
        raise GMError(f"GM backend {name!r} is not installed: {exc}", code="gm_backend_unavailable") from exc
    if name == "gmssl" and not _gmssl_warned:
        _gmssl_warned = True
        log.warning(
            "gm_backend_gmssl",
            detail="SM2 runs on gmssl: pure Python, ~20x slower and not constant-time; "
            "install tongsuopy>=1.0.1 where a wheel exists",
        )
    return module


def _auto(production: bool) -> ModuleType:
    try:
        return _load("tongsuopy")
    except GMError as exc:
        if production:
            raise GMError(
                f"XSN_ENV=production and tongsuopy cannot be used ({exc.message}); refusing to sign with the "
                "pure-Python gmssl fallback (about 20x slower, not constant-time). Install tongsuopy>=1.0.1, "
                f"or set {ENV_VAR}=gmssl to run on gmssl knowingly.",
                code="gm_backend_refused",
            ) from exc
        # tongsuopy has no Linux aarch64 wheel; outside production degrade rather than refuse to start.
        return _load("gmssl")


def current() -> ModuleType:
    """The backend module in use, chosen on first call.

    :raise GMError: ``XSN_GM_BACKEND`` names an unknown or uninstalled backend
        (code ``gm_backend_unavailable``).
    """
    backend = _current
    if backend is not None:
        return backend
    return _choose()


def _choose(production: bool | None = None) -> ModuleType:
    global _current
    if production is None:
        production = os.environ.get(DEPLOYMENT_ENV_VAR, "").strip().lower() == "production"
    with _lock:
        if _current is None:
            forced = os.environ.get(ENV_VAR, "").strip().lower()
            _current = _load(forced) if forced else _auto(production)
        return _current


def check_backend(env: str | None) -> str:
    """Choose the SM2 backend now (at start-up) and return its name.

    ``env``: the deployment (config ``ENV``); in ``"production"`` the gmssl fallback is
    refused unless ``XSN_GM_BACKEND=gmssl`` names it.

    :raise GMError: code ``gm_backend_refused`` (production without tongsuopy), or
        ``gm_backend_unavailable`` (``XSN_GM_BACKEND`` names an unknown or uninstalled one).
    """
    backend = _current
    if backend is None:
        backend = _choose(production=str(env or "").strip().lower() == "production")
    return backend.name


def use_backend(name: str | None) -> None:
    """Force a backend (``"tongsuopy"`` or ``"gmssl"``); ``None`` re-chooses on next use.

    Meant for tests and benchmarks. Keys created earlier keep working: they
    build a handle for each backend on demand.

    :raise GMError: unknown or uninstalled backend (code ``gm_backend_unavailable``).
    """
    global _current
    module = _load(name) if name is not None else None
    with _lock:
        _current = module


def backend_name() -> str:
    """``"tongsuopy"`` or ``"gmssl"``: the SM2 backend in use."""
    return current().name
