"""The database of a Flask app: :mod:`common.db` bound to Flask's app and request contexts.

:mod:`common.db` is plain Python so that models and domain modules need no Flask; this
module tells it where the current app (``current_app``) and the request's state (``g``,
which holds the request's session) are.
"""

from __future__ import annotations

from flask import Flask

from common import db
from common.web.context import current_app_object, request_globals


class FlaskScope:
    # The objects, not the proxies (common.web.context): every request's teardown reads the state.
    current_app = staticmethod(current_app_object)
    state = staticmethod(request_globals)


def init_app(app: Flask, url: str) -> db.Database:
    db.bind_request_scope(FlaskScope())
    return db.init_app(app, url)
