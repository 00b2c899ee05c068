"""Every documented operation of every service, fed generated requests through the gateway.

The project's rule for bad input, checked against the real processes: whatever a caller sends,
the answer is never a 5xx or a stack trace, and every 4xx is ``application/problem+json`` with
a stable ``code`` (the documented ``Problem`` schema). schemathesis generates the requests
from the committed OpenAPI documents (docs/openapi/, generated from the code), both valid ones
(``positive``: their 2xx answers must also match the documented response schema and media
type) and invalid ones (``negative``: wrong types, missing members, out-of-range values).

Each request carries a token of ``xsn-fuzz``, a client this module registers with every
scope and audience the routes ask for, so it passes the gateway's and the services' scope
checks and reaches the code behind them; routes that act for a configured department (issuing
licences, collecting fees) are called by the demo client mapped to one (``DEPARTMENT_CLIENTS``).
On operations that need a token, the first examples are also sent without one, with a forged
one (signed by a key identity never published) and with a valid token of too little scope: the
first two must be refused with a problem, the third must at least be answered with one.

Generation is derandomised: a failure reproduces on the next run, and each finding is
reported with its ``curl`` command (the token filtered out). Every finding of an operation is
collected before it fails, so one run triages them all. ``XSN_TEST_FUZZ_EXAMPLES`` sets the
examples per operation and mode (default 3: the whole module well under a minute and a half
on the embedded setup; CI asks for more); ``XSN_TEST_FUZZ_LOG=<file>`` writes a line per
request with its status, to see what the sweep reached.

What is left out, and why (the session's suite is shared with the other end-to-end tests):
- no operation is excluded, though some change state (register clients, disable one, rotate a
  secret, create seals and licence types, post ledger transfers): the identifiers they are
  generated with are random strings, dates and numbers that cannot name the demo clients or
  the data the other tests use, and ``xsn-fuzz`` has rate-limit buckets of its own;
- the routes that serve a signed-in person (``/licenses/my/**``, ``/identity/api/v1/me/**``)
  answer a machine client's token 403 before reading the rest of the request: only that
  answer, and the requests' parsing up to it, are swept;
- the OAuth, login and page routes are not in the OpenAPI documents, so not swept here (their
  own tests cover bad input).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.support.suite import TokenFactory, client_token

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
EXAMPLES = int(os.environ.get("XSN_TEST_FUZZ_EXAMPLES", "3"))
# One line per request (service, operation, valid, refused, status): what the sweep reached.
LOG = Path(os.environ["XSN_TEST_FUZZ_LOG"]) if os.environ.get("XSN_TEST_FUZZ_LOG") else None
# Every scope a documented route asks for (the gateway's route files and the services' own
# require_token), and every audience: one token reaches every operation.
SCOPES = ["identity:admin", "identity:people:read", "account", "phone:full", "email:full", "idcard:full",
          "seal:admin", "seal:sign", "seal:read", "audit:read",
          "licenses:admin", "licenses:issue", "licenses:read", "licenses:holder", "licenses:verify",
          "payment:admin", "payment:collect", "payment:read",
          "messaging:admin", "messaging:send", "messaging:inbox", "tokens:revocations"]
AUDIENCES = ["xsn:identity", "xsn:seal", "xsn:licenses", "xsn:payment", "xsn:messaging", "xsn:gateway"]
FUZZ_CLIENT = "xsn-fuzz"
# The services' responses must match the documents; undocumented statuses are judged by the
# problem rule below, not by schemathesis's status check (every operation documents "default").
CONFORMANCE = [response_schema_conformance, content_type_conformance]


def _operations() -> list[tuple[str, schemathesis.APIOperation]]:
    """(service, operation) for every operation of every committed document. Each service sits
    under ``/<service>`` at the gateway (gateway/routes/<service>.yaml), the gateway's own API
    under ``/gateway``."""
    found = []
    for document in sorted(DOCS.glob("*.json")):
        schema = schemathesis.openapi.from_dict(json.loads(document.read_text()))
        found += [(document.stem, result.ok()) for result in schema.get_all_operations()]
    return found


OPERATIONS = _operations()
PROBLEM = json.loads((DOCS / "seal.json").read_text())["components"]["schemas"]["Problem"]


# Routes that act for a configured department, not merely for a scope: the demo client the
# node maps to one calls them, so generated requests get past "acts for nobody" (403) to the
# code that reads them. (service, path prefix) -> client.
DEPARTMENT_CLIENTS = {("licenses", "/licences"): "xsn-licenses-demo-issuer",
                      ("licenses", "/bulk-jobs"): "xsn-licenses-demo-issuer",
                      ("payment", "/notices"): "xsn-dept-market"}


def _caller(service: str, path: str) -> str:
    if path == "/notices/lookup":  # public: the payer's own lookup
        return FUZZ_CLIENT
    return next((client for (name, prefix), client in DEPARTMENT_CLIENTS.items()
                 if name == service and (path == prefix or path.startswith(prefix + "/"))), FUZZ_CLIENT)


class FuzzTokens:
    """Tokens of ``xsn-fuzz`` and of the department clients, minted again before they expire
    (CI's longer runs outlast one)."""

    def __init__(self, suite, secret: str) -> None:
        self.suite, self.secret = suite, secret
        self.minted: dict[tuple[str, str], tuple[float, str]] = {}

    def bearer(self, client: str = FUZZ_CLIENT, scope: str = "") -> str:
        minted_at, token = self.minted.get((client, scope), (0.0, ""))
        if time.monotonic() - minted_at > 240:  # the clients' tokens live 600 s
            data = {"scope": scope} if scope else {}
            secret = self.secret if client == FUZZ_CLIENT else None  # None: the demo secret
            token = client_token(self.suite, client, secret, **data)["access_token"]
            self.minted[(client, scope)] = (time.monotonic(), token)
        return f"Bearer {token}"


@pytest.fixture(scope="module")
def fuzz_tokens(suite) -> FuzzTokens:
    gateway = suite.base_url("gateway")
    admin = client_token(suite, "xsn-admin", scope="identity:admin", resource="xsn:identity")["access_token"]
    answer = requests.post(f"{gateway}/identity/admin/clients/", timeout=10,
                           headers={"Authorization": f"Bearer {admin}"},
                           json={"name": "API fuzz sweep (tests)", "client_id": FUZZ_CLIENT,
                                 "grant_types": ["client_credentials"], "scopes": SCOPES, "audiences": AUDIENCES})
    assert answer.status_code == 201, answer.text
    return FuzzTokens(suite, answer.json()["client_secret"])


@pytest.fixture(scope="module")
def forged_bearer(suite) -> str:
    """Well formed, of the right issuer, audiences and scopes, signed by a key nobody trusts."""
    issuer = f"{suite.base_url('gateway')}/identity"
    return f"Bearer {TokenFactory(issuer).token(aud=AUDIENCES, scope=' '.join(SCOPES), client_id=FUZZ_CLIENT)}"


def _problem_finding(response: schemathesis.Response) -> str | None:
    """What is wrong with an error answer, or ``None`` when it is a proper problem document."""
    media_type = (response.headers.get("content-type") or [""])[0]  # schemathesis: lower-case names, lists
    if media_type.split(";")[0].strip() != "application/problem+json":
        return f"{response.status_code} as {media_type!r}, not a problem document: {response.content[:200]!r}"
    try:
        jsonschema.validate(json.loads(response.content), PROBLEM)
    except (ValueError, jsonschema.ValidationError) as exc:
        return f"{response.status_code} problem document off its schema: {str(exc).splitlines()[0]}"
    return None


def _judge(case, response: schemathesis.Response, *, valid: bool, refused: bool) -> str | None:
    """The finding in one answer, or ``None``. ``valid``: a positive case with the full token
    (a 2xx must then match the document); ``refused``: no or a forged token (must be a 4xx)."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.content[:300]!r}"
    if b"Traceback (most recent call last)" in response.content:
        return f"{status} carries a stack trace"
    if refused and not 400 <= status < 500:
        return f"{status} without a valid token"
    if status >= 400:
        return _problem_finding(response)
    if valid and 200 <= status < 300:
        try:
            case.validate_response(response, checks=CONFORMANCE)
        except AssertionError as exc:
            return f"{status} off the documented response: {str(exc)[:400]}"
    return None


@pytest.mark.parametrize(("service", "operation"), OPERATIONS, ids=[f"{s} {op.label}" for s, op in OPERATIONS])
def test_generated_requests_get_answers_or_problems_never_failures(suite, fuzz_tokens, forged_bearer,
                                                                   service, operation):
    base = f"{suite.base_url('gateway')}/{service}"
    secured = bool(operation.definition.raw.get("security"))
    caller = _caller(service, operation.path)
    http = requests.Session()
    findings: list[str] = []
    sent = {"requests": 0, "unauthorised": 0}

    def send(case, authorization: str | None, *, valid: bool = False, refused: bool = False) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        sent["requests"] += 1
        try:
            response = case.call(base_url=base, session=http, headers=headers, timeout=60)
        except requests.RequestException as exc:
            finding = f"no answer: {exc!r}"
        else:
            finding = _judge(case, response, valid=valid, refused=refused)
            if LOG:
                with LOG.open("a", encoding="utf-8") as log:
                    log.write(f"{service}\t{operation.label}\t{valid}\t{refused}\t{response.status_code}\n")
        if finding:
            findings.append(f"{finding}\n    {case.as_curl_command(base_url=base, headers=headers)}")

    def sweep(mode: GenerationMode) -> None:
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def each(case):
            # the generated Authorization header (schemathesis's own) gives way to ours
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            send(case, fuzz_tokens.bearer(caller), valid=mode is GenerationMode.POSITIVE)
            if secured and sent["unauthorised"] < 2:
                sent["unauthorised"] += 1
                send(case, None, refused=True)
                send(case, forged_bearer, refused=True)
                send(case, fuzz_tokens.bearer(scope="payment:read"))

        try:
            each()
        except Unsatisfiable:
            # nothing in the operation can be made invalid (no parameters, or only free-form
            # strings): its valid requests were swept above
            assert mode is GenerationMode.NEGATIVE

    sweep(GenerationMode.POSITIVE)
    sweep(GenerationMode.NEGATIVE)
    assert not findings, f"{len(findings)} of {sent['requests']} requests to {service} {operation.label}:\n" + \
        "\n".join(findings)
