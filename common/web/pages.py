"""Server-rendered pages: CSRF protection (Flask-WTF), the shared page shell and its helpers.

Every service's templates can call ``local_time(value)`` (or ``value|local_time``, and
``local_date``): an instant in China time (:mod:`common.values.times`), registered here once.

CSRF is not checked by default (the JSON APIs authenticate with bearer tokens, which a
browser does not attach by itself); every page blueprint with forms opts in through
:func:`protect`. A page blueprint read by people opts into :func:`html_errors`: whatever fails
in its views answers an error page (``pages/error.html``), not a problem document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from flask import Blueprint, Flask, current_app, render_template, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from common.errors import Problem
from common.values.times import local_date, local_time
from common.web.problems import handle_problem, handle_unexpected

csrf = CSRFProtect()


class CSRFFailed(Problem):
    status, code, title = 400, "csrf_failed", "The form has expired or was not sent by this site"


def protect(blueprint: Blueprint) -> Blueprint:
    """Require a valid CSRF token on every unsafe request to ``blueprint``'s views."""
    blueprint.before_request(csrf.protect)
    return blueprint


def not_stored(blueprint: Blueprint) -> Blueprint:
    """Every answer of ``blueprint`` (its error pages and redirects too) says ``Cache-Control:
    no-store``: for pages that may hold a live code or a person's data, which no cache may keep,
    the browser's back-forward one included. One hook, so a view added later cannot forget it."""

    @blueprint.after_request
    def _no_store(response):
        response.headers["Cache-Control"] = "no-store"
        return response

    return blueprint


# Headers of the problem an error page keeps: how long to wait, which methods a route takes.
ERROR_HEADERS = ("Retry-After", "Allow")


def html_errors(blueprint: Blueprint, *, back: str, back_text: str,
                texts: Mapping[str, str] | None = None) -> Blueprint:
    """Answer anything ``blueprint``'s views raise (or CSRF protection refuses) with an error
    page in the reader's language: the status, a plain explanation, the request id and a link
    back to the ``back`` endpoint, labelled with the ``back_text`` catalog key.

    ``texts``: a problem code -> the catalog key explaining it; others get ``error.generic``.
    The problem is built by the APIs' own handlers (:mod:`common.web.problems`: the same code,
    status, ``Retry-After``/``Allow`` headers and logging, an unexpected error logged with its
    trace and never shown); only its body is replaced by the page.
    """
    texts = dict(texts or {})

    def error_page(exc: Exception):
        own = _app_page_handler(exc)
        if own is not None:
            return own(exc)
        if isinstance(exc, CSRFError):
            exc = CSRFFailed(exc.description)
        answer = handle_problem(exc) if isinstance(exc, Problem) else handle_unexpected(exc)
        problem = json.loads(answer.get_data())
        headers = {name: answer.headers[name] for name in ERROR_HEADERS if name in answer.headers}
        page = render_template("pages/error.html", problem=problem,
                               message=texts.get(problem["code"], "error.generic"),
                               back_url=url_for(back), back_text=back_text)
        return page, problem["status"], headers

    blueprint.register_error_handler(Exception, error_page)
    # CSRFError separately: a handler for its status (400) comes before one for Exception, and
    # the app has one (init_pages) answering a problem document.
    blueprint.register_error_handler(CSRFError, error_page)
    return blueprint


# The app's handlers for these answer problem documents (common.web.problems, init_pages).
_PROBLEM_HANDLED = (Exception, Problem, HTTPException, CSRFError)


def _app_page_handler(exc: Exception):
    """The app's own handler of an exception it answers with a page of its own (the consoles'
    403 and sign-in failures, :mod:`common.web.console_login`): a blueprint's handler of
    ``Exception`` would otherwise come first in Flask's lookup."""
    for cls in type(exc).__mro__:
        if cls in _PROBLEM_HANDLED:
            return None
        handler = current_app.error_handler_spec[None][None].get(cls)
        if handler is not None:
            return handler
    return None


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
