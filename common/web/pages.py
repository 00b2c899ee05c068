"""Server-rendered pages: CSRF protection (Flask-WTF), the shared page shell and its helpers.

Every service's templates can call ``local_time(value)`` (or ``value|local_time``, and
``local_date``): an instant in China time (:mod:`common.values.times`), registered here once.

CSRF is not checked by default (the JSON APIs authenticate with bearer tokens, which a
browser does not attach by itself); every page blueprint with forms opts in through
:func:`protect`.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_wtf.csrf import CSRFError, CSRFProtect

from common.errors import Problem
from common.values.times import local_date, local_time
from common.web.problems import handle_problem

csrf = CSRFProtect()


class CSRFFailed(Problem):
    status, code, title = 400, "csrf_failed", "The form has expired or was not sent by this site"


def protect(blueprint: Blueprint) -> Blueprint:
    """Require a valid CSRF token on every unsafe request to ``blueprint``'s views."""
    blueprint.before_request(csrf.protect)
    return blueprint


def init_pages(app: Flask) -> None:
    csrf.init_app(app)
    if not app.config.get("WTF_CSRF_CHECK_DEFAULT", True):
        # Flask-WTF's app-wide hook does nothing but read this setting on every request;
        # protection is per blueprint (protect()), so the hook is dropped (issue 9).
        hooks = app.before_request_funcs[None]
        hooks[:] = [hook for hook in hooks if getattr(hook, "__name__", None) != "csrf_protect"]
    for name, helper in (("local_time", local_time), ("local_date", local_date)):
        app.add_template_global(helper, name)
        app.add_template_filter(helper, name)
    app.register_error_handler(CSRFError, lambda exc: handle_problem(CSRFFailed(exc.description)))
