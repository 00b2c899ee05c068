"""The audit spool's fixtures: an ``AuditSpool`` on a temporary directory (reopened as a
restarted edge) and a ``SpoolReader`` as the writer process."""

from __future__ import annotations

import pytest

from gateway.audit.spool import AuditSpool
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.spool.support import abandon, ids_from


@pytest.fixture
def spools(tmp_path):
    """``spools(**options)``: an ``AuditSpool`` on ``tmp_path`` (a reopened one, too). Whatever a
    test leaves open (an assertion failed half-way) is closed after it: no lock or thread leaks
    into the next test."""
    opened: list[AuditSpool] = []

    def open_spool(**options) -> AuditSpool:
        opened.append(AuditSpool(tmp_path, **options))
        return opened[-1]

    yield open_spool
    for spool in opened:
        if not spool._closed:
            spool.close()


@pytest.fixture
def spool(spools) -> AuditSpool:
    return spools()


@pytest.fixture
def read_ids(tmp_path):
    """``read_ids()``: the request ids a fresh reader (as the writer process) finds from the start."""

    def read() -> list[str]:
        reader = SpoolReader(tmp_path)
        try:
            return ids_from(reader)
        finally:
            reader.close()

    return read


@pytest.fixture
def restart(spools, read_ids):
    """``restart(spool)``: the edge killed (no clean close) and started again; the ids read back."""

    def restart_(spool: AuditSpool) -> list[str]:
        abandon(spool)
        spools()
        return read_ids()

    return restart_
