"""The objects behind Flask's context proxies (``request``, ``g``, ``current_app``), for hot paths.

Why: every attribute read through one of werkzeug's ``LocalProxy`` objects costs ~8 k
instructions (a failed normal look-up, then the proxy's ``__getattr__`` finding the object
again; 0.96 k without the proxy, callgrind, docs/ARCHITECTURE.md "Instructions per request").
Code that runs on every request (hooks, the token check, a view's helpers) takes the object
once through one of these and reads its attributes on it; a template or a page view may use
the proxies, where they cost little.

Each accessor is the proxy's own ``_get_current_object`` (werkzeug's documented way to the
object), bound once here rather than wrapped in a function: a call costs ~2.3 k instructions,
~0.26 k fewer than ``proxy._get_current_object()`` written at the call site, where a wrapping
function would cost ~0.23 k more (callgrind, 100,000 calls in a request context). Each raises
``RuntimeError`` outside the context it needs, as the proxy does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, current_app, g, request

current_request: Callable[[], Request] = request._get_current_object
"""The request being handled (``flask.request``'s object). :raise RuntimeError: no request context."""

request_globals: Callable[[], Any] = g._get_current_object
"""The current app context's namespace (``flask.g``'s object): one per request, or per
``app.app_context()`` block outside one. :raise RuntimeError: no app context."""

current_app_object: Callable[[], Flask] = current_app._get_current_object
"""The app of the current context (``flask.current_app``'s object). :raise RuntimeError: no app context."""
