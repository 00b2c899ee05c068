"""The declarative base every identity table shares (the service's one database).

Its own module so that the account tables (:mod:`identity.models`) and the OAuth tables
(:mod:`identity.oauth.models`) both build on it without importing each other.
"""

from __future__ import annotations

from common.db import make_base

Base = make_base()
