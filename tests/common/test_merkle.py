import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.crypto.merkle import (
    MemoryTree,
    ProofError,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    sha256,
    sm3,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

# Leaves and SHA-256 vectors from the certificate-transparency / transparency-dev test data.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
_H96 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
_H5F = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
_H6B = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
_HBC = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
_HCA = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
# (leaf index, tree size, proof), leaf index 0-based.
INCLUSION = [
    (0, 1, []),
    (0, 8, [_H96, _H5F, _H6B]),
    (5, 8, [_HBC, _HCA, ROOTS[4]]),
    (2, 3, [ROOTS[2]]),
    (1, 5, [ROOTS[1], _H5F, _HBC]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [_H96, _H5F, _H6B]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", _HCA, ROOTS[4]]),
    (2, 5, [_H5F, _HBC]),
]
HASHES = pytest.mark.parametrize("hash_fn", [sha256, sm3], ids=["sha256", "sm3"])


def _tree(leaves, hash_fn=sm3):
    tree = MemoryTree(hash_fn=hash_fn)
    for entry in leaves:
        tree.append(entry)
    return tree


def test_hash_functions_are_what_they_claim():
    # GB/T 32905-2016 example 1 and FIPS 180-2 "abc".
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sha256(b"abc").hex().startswith("ba7816bf8f01cfea")


def test_empty_tree():
    assert empty_root(hash_fn=sha256).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MemoryTree(hash_fn=sha256).root() == empty_root(hash_fn=sha256)
    assert root_from_leaf_hashes([], hash_fn=sm3) == sm3(b"")


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_known_sha256_roots(size):
    tree = _tree(LEAVES[:size], sha256)
    assert tree.root().hex() == ROOTS[size]
    # Same answer straight from the recursive definition, and for historical sizes.
    leaf_hashes = [leaf_hash(e, hash_fn=sha256) for e in LEAVES[:size]]
    assert root_from_leaf_hashes(leaf_hashes, hash_fn=sha256).hex() == ROOTS[size]
    assert _tree(LEAVES, sha256).root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_known_sha256_inclusion_proofs(index, size, proof):
    tree = _tree(LEAVES, sha256)
    got = tree.inclusion_proof(index, size)
    assert [h.hex() for h in got] == proof
    leaf = leaf_hash(LEAVES[index], hash_fn=sha256)
    verify_inclusion(leaf, index, size, got, bytes.fromhex(ROOTS[size]), hash_fn=sha256)


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_known_sha256_consistency_proofs(size1, size2, proof):
    tree = _tree(LEAVES, sha256)
    got = tree.consistency_proof(size1, size2)
    assert [h.hex() for h in got] == proof
    verify_consistency(size1, size2, bytes.fromhex(ROOTS[size1]), bytes.fromhex(ROOTS[size2]), got,
                       hash_fn=sha256)


@HASHES
def test_rfc6962_seven_leaf_example(hash_fn):
    """The figures of RFC 6962 §2.1.3: leaves a-f and j, inner nodes g h i k l."""
    tree = _tree(LEAVES[:7], hash_fn)

    def node(x, y):
        return node_hash(x, y, hash_fn=hash_fn)

    a, b, c, d, e, f, j = (leaf_hash(x, hash_fn=hash_fn) for x in LEAVES[:7])
    g, h, i = node(a, b), node(c, d), node(e, f)
    k, l_ = node(g, h), node(i, j)
    assert tree.root() == node(k, l_)
    assert tree.inclusion_proof(0) == [b, h, l_]
    assert tree.inclusion_proof(3) == [c, g, l_]
    assert tree.inclusion_proof(4) == [f, j, k]
    assert tree.inclusion_proof(6) == [i, k]
    assert tree.consistency_proof(3, 7) == [c, d, g, l_]
    assert tree.consistency_proof(4, 7) == [l_]
    assert tree.consistency_proof(6, 7) == [i, j, k]
    for size1 in (3, 4, 6):
        verify_consistency(size1, 7, tree.root(size1), tree.root(), tree.consistency_proof(size1, 7),
                           hash_fn=hash_fn)
    for index in range(7):
        verify_inclusion(tree.get_node(0, index), index, 7, tree.inclusion_proof(index), tree.root(),
                         hash_fn=hash_fn)


def test_default_hash_is_sm3():
    tree = MemoryTree()
    tree.append(b"entry")
    assert tree.root() == sm3(b"\x00entry")
    assert leaf_hash(b"entry") == tree.root()


def test_memory_tree_stores_only_complete_subtrees():
    tree = _tree([bytes([i]) for i in range(13)])
    # A tree of n leaves has 2n - popcount(n) perfect subtrees.
    assert len(tree._nodes) == 2 * 13 - bin(13).count("1")
    assert tree.get_node(2, 2) == root_from_leaf_hashes([tree.get_node(0, i) for i in range(8, 12)])
    with pytest.raises(KeyError):
        tree.get_node(2, 3)  # leaves 12..15, only one of them appended
    with pytest.raises(ValueError):
        tree.root(14)


def test_subtree_root_of_unaligned_range_matches_definition():
    tree = _tree([bytes([i]) for i in range(20)])
    leaves = [tree.get_node(0, i) for i in range(20)]
    for start, end in [(3, 7), (1, 17), (5, 5), (6, 10)]:
        assert subtree_root(start, end, tree.get_node) == root_from_leaf_hashes(leaves[start:end])


def test_proof_arguments_are_checked():
    tree = _tree([b"a", b"b", b"c"])
    with pytest.raises(ValueError):
        inclusion_proof(3, 3, tree.get_node)
    with pytest.raises(ValueError):
        inclusion_proof(0, 0, tree.get_node)
    with pytest.raises(ValueError):
        consistency_proof(3, 2, tree.get_node)
    with pytest.raises(ValueError):
        tree.inclusion_proof(0, 4)
    assert consistency_proof(0, 3, tree.get_node) == []


# --- property tests over one SM3 tree ---------------------------------------------------------

MAX = 300
BIG = _tree([f"entry {i}".encode() for i in range(MAX)])
LEAF_HASHES = [BIG.get_node(0, i) for i in range(MAX)]


def _root(size):
    return root_from_leaf_hashes(LEAF_HASHES[:size])


@st.composite
def index_and_size(draw):
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw):
    size2 = draw(st.integers(1, MAX))
    return draw(st.integers(1, size2)), size2


@given(index_and_size())
def test_inclusion_proofs_verify(args):
    index, size = args
    proof = BIG.inclusion_proof(index, size)
    assert BIG.root(size) == _root(size)
    verify_inclusion(LEAF_HASHES[index], index, size, proof, _root(size))


@given(two_sizes())
def test_consistency_proofs_verify(args):
    size1, size2 = args
    verify_consistency(size1, size2, _root(size1), _root(size2), BIG.consistency_proof(size1, size2))


def _flips(proof):
    for i, h in enumerate(proof):
        yield [*proof[:i], bytes([h[0] ^ 1]) + h[1:], *proof[i + 1 :]]


@pytest.mark.slow
@given(index_and_size(), st.data())
def test_bad_inclusion_proofs_are_rejected(args, data):
    index, size = args
    proof, root, leaf = BIG.inclusion_proof(index, size), _root(size), LEAF_HASHES[index]
    bad = [
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, proof, sm3(b"not the root")),
        (sm3(b"other leaf"), index, size, proof, root),
        (leaf, size, size, proof, root),
        *((leaf, index, size, p, root) for p in _flips(proof)),
    ]
    if size > 1:
        bad.append((leaf, index, size, proof[:-1], root))
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="wrong index")
        bad.append((leaf, other, size, proof, root))
    other_size = data.draw(st.integers(index + 1, MAX).filter(lambda n: n != size), label="wrong size")
    bad.append((leaf, index, other_size, proof, _root(other_size)))
    for case in bad:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


@pytest.mark.slow
@given(two_sizes(), st.data())
def test_bad_consistency_proofs_are_rejected(args, data):
    size1, size2 = args
    proof, root1, root2 = BIG.consistency_proof(size1, size2), _root(size1), _root(size2)
    wrong = sm3(b"wrong")
    bad = [
        (size1, size2, root1, wrong, proof),
        (size1, size2, wrong, root2, proof),
        (size1, size2, root1, root2, [*proof, root1]),
        (size2, size1, root2, root1, proof) if size1 != size2 else (size1, size2, root1, wrong, []),
        *((size1, size2, root1, root2, p) for p in _flips(proof)),
    ]
    if proof:
        bad.append((size1, size2, root1, root2, proof[:-1]))
    if size1 < size2:
        other = data.draw(st.integers(1, size2 - 1).filter(lambda n: n != size1), label="wrong size1")
        if BIG.consistency_proof(other, size2) != proof:
            bad.append((other, size2, _root(other), root2, proof))
    for case in bad:
        with pytest.raises(ProofError):
            verify_consistency(*case)


def test_verification_edge_cases():
    r3, r5 = _root(3), _root(5)
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(LEAF_HASHES[0], 0, 0, [], empty_root())
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(LEAF_HASHES[0], 0, 3, [b"short", LEAF_HASHES[2]], r3)
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(LEAF_HASHES[0], 0, 3, [], r3)
    verify_consistency(0, 5, empty_root(), r5, [])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(0, 5, empty_root(), r5, [r5])
    verify_consistency(5, 5, r5, r5, [])
    with pytest.raises(ProofError, match="differ"):
        verify_consistency(5, 5, r5, r3, [])
    with pytest.raises(ProofError, match="is empty"):
        verify_consistency(3, 5, r3, r5, [])
    with pytest.raises(ProofError, match="prefix"):
        verify_consistency(5, 3, r5, r3, BIG.consistency_proof(3, 5))
