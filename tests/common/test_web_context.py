"""common.web.context: the objects behind Flask's ``request``, ``g`` and ``current_app``."""

from __future__ import annotations

import pytest
from flask import Flask, current_app, g, request

from common.web.context import current_app_object, current_request, request_globals


def test_each_accessor_gives_the_object_its_proxy_stands_for():
    app = Flask(__name__)
    with app.test_request_context("/x?lang=en"):
        assert current_request() is request._get_current_object()
        assert current_request().args["lang"] == "en"
        assert request_globals() is g._get_current_object()
        assert current_app_object() is app
    with app.app_context():  # g and the app without a request, as a task or the CLI has them
        request_globals().marker = 1
        assert g.marker == 1
        assert current_app_object() is current_app._get_current_object() is app


def test_each_accessor_raises_outside_its_context_as_the_proxy_does():
    for accessor in (current_request, request_globals, current_app_object):
        with pytest.raises(RuntimeError, match="outside of"):
            accessor()
    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="outside of request context"):
        current_request()


def test_two_apps_in_turn_each_see_their_own():
    first, second = Flask("first"), Flask("second")
    for app in (first, second, first):
        with app.test_request_context("/"):
            assert current_app_object() is app
            request_globals().name = app.name
            assert g.name == app.name
