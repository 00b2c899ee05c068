"""Electronic seal node (电子印章): seal registry, SM2/SM3 signatures and the signature transparency log."""

from __future__ import annotations

from typing import Any

from flask import Flask

from common.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("seal", test_config, import_name=__name__)
