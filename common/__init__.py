"""Shared core of the Xi'an shared business-support nodes (西安市共性业务支撑节点).

Every service is built by :func:`common.web.app.create_app`; nothing in this package reads
configuration or touches the network at import time.
"""
