"""The checks both logs share: offline evidence (common.merkle_log.offline, .cli) and the leaf
walk of the stored-log tamper check (common.merkle_log.self_check)."""

import json
from types import SimpleNamespace

import pytest
import rfc8785

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey
from common.crypto.signed_note import Checkpoint, sign_note
from common.merkle_log import offline
from common.merkle_log.self_check import CheckReport, LeafWords, check_stored_leaf, rebuild_tree
from common.merkle_log.store import HASH, HASH_SIZE

ORIGIN = "xsn.example/test-log"
NAMES = {"checkpoint_signature": "checkpoint signature", "older_checkpoint_signature": "older checkpoint signature",
         "leaf": "leaf", "consistency": "consistency"}


@pytest.fixture(scope="module")
def key():
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def tree():
    tree = merkle.MemoryTree(hash_fn=HASH)
    for i in range(9):
        tree.append(b"leaf %d" % i)
    return tree


def note(key, tree, size, origin=ORIGIN):
    public = key.public_key()
    return sign_note(Checkpoint(origin, size, tree.root(size)).body(), origin, key, public.to_der())


def checkpoint(tree, size):
    return Checkpoint(ORIGIN, size, tree.root(size))


def report():
    return offline.Report(NAMES)


def test_steps_are_named_by_kind_and_by_entry():
    r = offline.Report(NAMES, entry_name="{name} {entry}")
    assert r.add("checkpoint_signature", True, "fine", code="signed", size=3)
    assert not r.add("leaf", False, "bad", entry=4)
    assert [s.name for s in r.steps] == ["checkpoint signature", "leaf 4"]
    assert not r.ok and r.to_dict()["steps"][0] == {"name": "checkpoint signature", "ok": True, "detail": "fine",
                                                    "kind": "checkpoint_signature", "entry": None, "code": "signed",
                                                    "params": {"size": 3}}
    assert offline.Report(NAMES, steps=[]).ok is False  # nothing checked proves nothing
    assert offline.Report(NAMES).add("leaf", True, "x", entry=1) and report().entry_name == "entry {entry}: {name}"


def test_unreadable_inputs_raise_bundle_error(key):
    with pytest.raises(offline.BundleError, match="not an SM2 public key"):
        offline.load_public_key("not a key")
    assert offline.load_public_key(key.public_key().to_pem()).to_der() == key.public_key().to_der()
    with pytest.raises(offline.BundleError, match="not JSON"):
        offline.load_json(b"{")
    with pytest.raises(offline.BundleError, match="must be a list"):
        offline.hex_hashes("00", "the proof")
    with pytest.raises(offline.BundleError, match="not hex"):
        offline.hex_hashes(["zz"], "the proof")
    assert offline.hex_hashes(["00ff"], "the proof") == [b"\x00\xff"]


@pytest.mark.parametrize(("leaf", "canonical"), [
    (b'{"a":1,"b":"x"}', True),
    (b'{"b":"x","a":1}', False),   # keys out of order
    (b'{"a": 1}', False),          # white space
    (b"[1,2]", False),             # canonical, but not an object
    (b"1", False),
    (b"{", False),
    (b'{"a":1e400}', False),       # not a finite number
])
def test_a_leaf_is_canonical_json_of_an_object(leaf, canonical):
    assert offline.is_canonical_object(leaf) is canonical


def test_checkpoint_notes_verify_by_the_pinned_key_only(key, tree):
    r = report()
    got = offline.check_checkpoint(r, note(key, tree, 5), key.public_key())
    assert got == checkpoint(tree, 5)
    assert (r.steps[-1].ok, r.steps[-1].code, r.steps[-1].params["size"]) == (True, "signed", 5)
    other = SM2PrivateKey.generate()
    assert offline.check_checkpoint(r, note(other, tree, 5), key.public_key()) is None
    assert (r.steps[-1].ok, r.steps[-1].code, r.steps[-1].kind) == (False, "rejected", "checkpoint_signature")
    # An older checkpoint must come from the same log (origin) as the bundle's.
    elsewhere = note(key, tree, 3, origin="xsn.example/another-log")
    assert offline.check_checkpoint(r, elsewhere, key.public_key(), kind="older_checkpoint_signature",
                                    origin=ORIGIN) is None
    assert (r.steps[-1].code, r.steps[-1].kind) == ("rejected", "older_checkpoint_signature")
    assert offline.check_checkpoint(r, "not a note", key.public_key()) is None


def consistency(tree, first, second, proof=None):
    proof = [h.hex() for h in tree.consistency_proof(first, second)] if proof is None else proof
    return {"consistency": [{"first": first, "second": second, "proof": proof}]}


@pytest.mark.parametrize(("older", "bundle", "code"), [
    (3, lambda t: consistency(t, 3, 9), "extends"),
    (0, lambda t: {}, "extends"),                      # the empty tree: nothing to prove
    (9, lambda t: {}, "extends"),                      # the same size: the roots are compared
    (3, lambda t: {}, "no_consistency_proof"),
    (3, lambda t: consistency(t, 3, 8), "no_consistency_proof"),  # a proof to another size
    (3, lambda t: consistency(t, 3, 9, ["zz"]), "not_extension"),
    (3, lambda t: consistency(t, 3, 9, "00"), "not_extension"),
    (3, lambda t: consistency(t, 3, 9, [h.hex() for h in t.consistency_proof(4, 9)]), "not_extension"),
])
def test_consistency_with_an_older_checkpoint(tree, older, bundle, code):
    r = report()
    offline.check_consistency(r, checkpoint(tree, older), checkpoint(tree, 9), bundle(tree))
    assert [(s.kind, s.ok, s.code) for s in r.steps] == [("consistency", code == "extends", code)]


def test_an_older_checkpoint_larger_than_the_bundles_fails(tree):
    r = report()
    offline.check_consistency(r, checkpoint(tree, 9), checkpoint(tree, 4), consistency(tree, 4, 9))
    assert [(s.ok, s.code, s.params) for s in r.steps] == [(False, "older_larger", {"older": 9, "size": 4})]
    forged = Checkpoint(ORIGIN, 3, bytes(HASH_SIZE))  # a root the log never had
    r = report()
    offline.check_consistency(r, forged, checkpoint(tree, 9), consistency(tree, 3, 9))
    assert [(s.ok, s.code) for s in r.steps] == [(False, "not_extension")]


def test_the_cli_ending_prints_the_steps_and_exits_with_the_verdict(capsys):
    from common.merkle_log.cli import verify_and_exit

    def passed():
        r = report()
        r.add("leaf", True, "canonical", entry=2)
        return r

    def failed():
        r = passed()
        r.add("consistency", False, "not an extension")
        return r

    def unreadable():
        raise offline.BundleError("the bundle is not JSON")

    for check, as_json, status in ((passed, False, 0), (failed, False, 1), (failed, True, 1), (unreadable, False, 2)):
        with pytest.raises(SystemExit) as exit_:
            verify_and_exit(check, as_json=as_json)
        assert exit_.value.code == status
        out, err = capsys.readouterr()
        if status == 2:
            assert err == "error: the bundle is not JSON\n" and out == ""
        elif as_json:
            assert json.loads(out)["ok"] is False and len(json.loads(out)["steps"]) == 2
        else:
            assert out.splitlines()[0] == "OK   entry 2: leaf: canonical"
            assert out.splitlines()[-1] == ("VERIFIED" if status == 0 else "VERIFICATION FAILED")


# -- the stored log's leaf walk ---------------------------------------------------------------

WORDS = LeafWords(prefix="entry", noun="leaf", of="an event", missing="an entry is missing",
                  beyond="an entry lies beyond the log")


def row(index, value):
    leaf = rfc8785.dumps(value).decode() if isinstance(value, dict) else value
    return SimpleNamespace(leaf_index=index, leaf=leaf,
                           leaf_hash=merkle.leaf_hash(leaf.encode(), hash_fn=HASH))


def test_a_stored_leaf_is_hashed_and_read_when_canonical():
    r = CheckReport(size=1)
    good = row(0, {"n": 0})
    assert check_stored_leaf(r, 0, good.leaf, good.leaf_hash, WORDS, rfc8785.dumps, lambda v: v["n"]) == (
        good.leaf_hash, 0)
    assert r.ok
    got = check_stored_leaf(r, 0, good.leaf, bytes(HASH_SIZE), WORDS, rfc8785.dumps, lambda v: v["n"])
    assert got == (good.leaf_hash, 0)
    assert r.problems == [{"code": "leaf_hash_mismatch", "detail": "the stored leaf hash is not the hash of the "
                           "stored leaf", "index": 0}]


@pytest.mark.parametrize("leaf", ['{"n": 0}', "[0]", "{", '{"n":"x"}'])
def test_a_stored_leaf_not_canonical_or_refused_by_its_reader_is_reported(leaf):
    def read(value):
        if not isinstance(value["n"], int):
            raise ValueError("n is a number")
        return value

    r = CheckReport(size=1)
    recomputed, value = check_stored_leaf(r, 3, leaf, b"", WORDS, rfc8785.dumps, read)
    assert value is None and recomputed == merkle.leaf_hash(leaf.encode(), hash_fn=HASH)
    assert {"code": "leaf_not_canonical", "detail": "the stored leaf is not canonical JSON of an event",
            "index": 3} in r.problems


def test_the_tree_is_rebuilt_with_missing_known_and_surplus_rows():
    rows = [row(i, {"n": i}) for i in range(6)]
    reference = merkle.MemoryTree(hash_fn=HASH)
    for r_ in rows[:5]:
        reference.append_leaf_hash(r_.leaf_hash)
    r = CheckReport(size=5)
    tree, count = rebuild_tree(r, rows, lambda x: x.leaf_hash, WORDS)
    assert (tree.root(), count) == (reference.root(), 6)
    assert r.problems == [{"code": "entry_beyond_head", "detail": "an entry lies beyond the log", "index": 5}]

    # Rows 0 and 3 gone: 0 is known (removed on purpose), 3 is not.
    r = CheckReport(size=5)
    tree, count = rebuild_tree(r, [rows[1], rows[2], rows[4]], lambda x: x.leaf_hash, WORDS,
                               known={0: rows[0].leaf_hash})
    assert count == 3 and tree.size == 5
    assert r.problems == [{"code": "entry_missing", "detail": "an entry is missing", "index": 3}]
    assert tree.get_node(0, 3) == bytes(HASH_SIZE) and tree.get_node(0, 0) == rows[0].leaf_hash
    # Missing at the end.
    r = CheckReport(size=3)
    tree, _ = rebuild_tree(r, [rows[0]], lambda x: x.leaf_hash, WORDS)
    assert [p["index"] for p in r.problems] == [1, 2] and tree.size == 3
