"""The self-check on an untouched log (tampering: test_tamper.py)."""

from __future__ import annotations

from seal.log import checkpoints, self_check
from tests.seal.log.events import ORIGIN, fill, signer


def test_self_check_passes_on_an_untouched_log(db):
    key = signer()
    fill(db, 10)
    checkpoints.publish_checkpoint(db, key)
    fill(db, 5, start=10)
    checkpoints.publish_checkpoint(db, key)
    public = key.private_key.public_key()
    report = self_check.self_check(db, {"test-key": (public, ORIGIN)})
    assert report.ok, report.problems
    assert (report.size, report.entries_checked, report.checkpoints_checked) == (15, 15, 2)
    assert report.nodes_checked == 15 + 7 + 3 + 1  # the perfect subtrees of a 15-leaf tree
