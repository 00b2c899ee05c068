"""Web plumbing every service app shares: the factory, problem documents on the wire, the
database bound to Flask, logs and metrics, health, pages, i18n, rate limits, token checks and
the staff-console login. What needs no Flask lives outside this package (``common.errors``,
``common.db``, ``common.http``, ``common.oidc_client``, ``common.values``, ``common.crypto``)."""

from common.web import arguments as _arguments

_arguments.install()  # before any service's API module decorates its routes (see the module)
