"""Chinese first, English available: message catalogs and the language of a request.

The language comes from ``?lang=zh|en`` (then remembered in a cookie), else the cookie,
else ``Accept-Language``, else Chinese. Catalogs are plain dicts per service: the pages are
few and the texts short, and this keeps them reviewable next to the code without a
gettext compile step in ``make run``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, has_request_context, request

from common.web.context import current_request

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
COOKIE = "xsn_lang"

COMMON_CATALOG: dict[str, dict[str, str]] = {
    "zh": {
        "site.name": "西安市共性业务支撑平台",
        "site.switch_language": "English",
        "site.footer": "西安市数字政府 · 共性业务支撑节点",
        "error.generic": "请求未能完成，请稍后重试。",
        "error.title": "无法完成请求",
        "error.status": "状态码",
        "error.request_id": "请求编号（咨询时请提供）：",
    },
    "en": {
        "site.name": "Xi'an Shared Business-Support Platform",
        "site.switch_language": "中文",
        "site.footer": "Xi'an digital government · shared business-support nodes",
        "error.generic": "The request could not be completed; please try again later.",
        "error.title": "The request could not be completed",
        "error.status": "Status",
        "error.request_id": "Request id (quote it when asking for help): ",
    },
}


def current_language() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if "lang" not in g:
        asked = request.args.get("lang")
        if asked in LANGUAGES:
            g.lang = asked
        elif request.cookies.get(COOKIE) in LANGUAGES:
            g.lang = request.cookies[COOKIE]
        else:
            g.lang = request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)
    return g.lang


def gettext(key: str, **values: Any) -> str:
    """The text of ``key`` in the request's language (the key itself if it is missing)."""
    catalogs = current_app.extensions.get("xsn_i18n", COMMON_CATALOG)
    lang = current_language()
    text = catalogs.get(lang, {}).get(key) or catalogs.get(DEFAULT_LANGUAGE, {}).get(key) or key
    return text.format(**values) if values else text


_ = gettext


def switch_language_url() -> str:
    """The current URL in the other language, keeping every other query parameter (e.g. ``next``)."""
    other = "en" if current_language() == "zh" else "zh"
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    return f"{request.script_root}{request.path}?{urlencode([*params, ('lang', other)])}"


def init_i18n(app: Flask, catalog: dict[str, dict[str, str]]) -> None:
    merged = app.extensions.setdefault("xsn_i18n", {lang: dict(COMMON_CATALOG[lang]) for lang in LANGUAGES})
    for lang in LANGUAGES:
        merged[lang].update(catalog.get(lang, {}))
    if app.extensions.get("xsn_i18n_wired"):
        return
    app.extensions["xsn_i18n_wired"] = True
    app.jinja_env.globals.update(_=gettext, current_language=current_language,
                                  switch_language_url=switch_language_url)

    @app.after_request
    def _remember_language(response: Response) -> Response:
        req = current_request()
        if "lang=" not in req.environ.get("QUERY_STRING", ""):
            return response  # most requests: no query to parse (issue 9, request cost)
        asked = req.args.get("lang")
        if asked in LANGUAGES:  # an explicit choice wins over the cookie: keep it for next time
            response.set_cookie(COOKIE, asked, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
        return response
