"""Federation with the provincial node: :mod:`.upstream` (the OIDC client, Flask-free) and
:mod:`.pages` (the browser side)."""
