"""Web plumbing every service app shares: the factory, errors on the wire, logs and metrics,
health, pages, i18n, rate limits, token checks and the staff-console login."""
