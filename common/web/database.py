"""The database of a Flask app: :mod:`common.db` bound to Flask's app and request contexts.

:mod:`common.db` is plain Python so that models and domain modules need no Flask; this
module tells it where the current app (``current_app``) and the request's state (``g``,
which holds the request's session) are.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g

from common import db


class FlaskScope:
    def current_app(self) -> Any:
        return current_app._get_current_object()

    def state(self) -> Any:
        # g's object, not the proxy: every request's teardown reads it (~8 k instructions a
        # proxied attribute, callgrind)
        return g._get_current_object()


def init_app(app: Flask, url: str) -> db.Database:
    db.bind_request_scope(FlaskScope())
    return db.init_app(app, url)
