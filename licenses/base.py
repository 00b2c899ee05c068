"""The declarative base every table of the licences database is declared on (one metadata):
here, not in :mod:`licenses.models`, so the holders' sign-in models (:mod:`licenses.console_models`)
can take it without importing the models that load them (as ``seal.base``)."""

from __future__ import annotations

from common.db import make_base

Base = make_base()
