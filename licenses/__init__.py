"""Electronic licences node (电子证照): licence catalogue, issuance, holder-authorised use and verification."""

from __future__ import annotations

from typing import Any

from flask import Flask

from common.web.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("licenses", test_config, import_name=__name__)
