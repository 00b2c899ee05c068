"""Staff-console sign-in with the identity node: OpenID Connect, code flow + PKCE (S256).

A service's staff console (seal management, the auditor console, ...) is a confidential
OAuth client of identity. The browser signs in at identity through the gateway; the code is
exchanged server-to-server at identity's internal URL with the client secret; the ID token
(every check of :mod:`common.oidc_client`) and the access token (audience ``xsn:<service>``)
are verified and kept server-side (encrypted under the service's KEK), the browser's cookie
holding only a random handle.

- :mod:`.models`: the two tables a service registers (flows in progress, signed-in consoles).
- :mod:`.flow`: identity as the OpenID provider; tokens obtained and checked.
- :mod:`.views`: the sign-in blueprint, ``console_required`` for page views, the 403 and
  failure pages.
"""

from common.web.console_login.flow import ConsoleForbidden, ConsoleLoginFailed
from common.web.console_login.models import ConsoleLoginMixin, ConsoleSessionMixin
from common.web.console_login.views import (
    SETTINGS,
    console_required,
    current_console_claims,
    init_console_login,
    login_url,
    make_console_login,
)

__all__ = ["SETTINGS", "ConsoleForbidden", "ConsoleLoginFailed", "ConsoleLoginMixin", "ConsoleSessionMixin",
           "console_required", "current_console_claims", "init_console_login", "login_url", "make_console_login"]
