"""Searching the log's entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seal.log import entries
from tests.seal.log.events import event, fill


def test_search_filters_and_pages(db):
    fill(db, 12)
    rows, total = entries.search_entries(db, entries.SearchQuery(seal_code=event(1)["seal_code"]))
    assert total == 4 and [r.leaf_index for r in rows] == [10, 7, 4, 1]
    rows, total = entries.search_entries(db, entries.SearchQuery(signer="staff-0", seal_id="seal-0"), page=2,
                                         per_page=1)
    assert total == 2 and [r.leaf_index for r in rows] == [0]
    digest = event(5)["document_digest"].upper()
    assert [r.leaf_index for r in entries.search_entries(db, entries.SearchQuery(document_digest=digest))[0]] == [5]
    since = datetime(2026, 1, 1, 0, 3, tzinfo=UTC)
    rows, total = entries.search_entries(db, entries.SearchQuery(since=since, until=since + timedelta(minutes=2)))
    assert [r.leaf_index for r in rows] == [4, 3]
