"""Instants shown in China time, once for every service's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import render_template_string

from common.values.times import CHINA, local_date, local_time


def test_local_time_is_utc_plus_eight_across_midnight():
    instant = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    assert local_time(instant) == "2027-01-01 00:30"
    assert local_date(instant) == "2027-01-01"
    assert local_time(instant, "%H:%M:%S") == "00:30:00"
    assert instant.astimezone(CHINA).utcoffset().total_seconds() == 8 * 3600


def test_nothing_shows_as_nothing_and_naive_is_utc():
    assert local_time(None) == "" and local_date(None) == ""
    assert local_time(datetime(2026, 6, 1, 12, 0)) == "2026-06-01 20:00"  # not the host's zone


def test_every_service_template_has_the_helpers(make_app):
    app = make_app("payment")
    instant = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    with app.test_request_context():
        rendered = render_template_string("{{ local_time(t) }}|{{ t|local_date }}|{{ local_time(None) }}", t=instant)
    assert rendered == "2027-01-01 00:30|2027-01-01|"
