"""The gateway's data plane: an asyncio (aiohttp + uvloop) server and client in front of the services.

``server.Gateway`` handles each request: host and path checks, the route table, token and
scope checks, rate limits, forwarding over pooled connections, and one audit record. The
modules it uses hold the rules without any HTTP framework: ``routing`` (the route table),
``paths`` (what a path may look like), ``boundary`` (the trusted-boundary headers),
``tokens`` and ``revocations`` (access tokens), ``limits`` (rate limits), ``upstreams``
(pools, retries, circuit breakers), ``audit_sink`` (the interface the audit log implements).
"""
