"""The verifiable map (specs/warg.md section 7): vectors, a naive full-tree reference, persistence.

The structure-sharing tree is checked against the plain definition (a full
256-level tree computed from the whole key set), including every old root after
later batches, and against the bytes upstream emits for scenario.json.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.warg.errors import ProofError
from cairn.warg.hashes import AnyHash
from cairn.warg.merkle_map import (
    EMPTY,
    EMPTY_ROOT,
    Branch,
    Lone,
    MapNode,
    MapProofBundle,
    MemoryMap,
    decode_node,
    evaluate,
    key_path,
    map_leaf_bytes,
    map_leaf_hash,
    prove,
    update,
)

SCENARIO: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "warg" / "scenario.json").read_text()
)
ROOTS = SCENARIO["roots_by_length"]


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---- naive reference --------------------------------------------------------------------------


def bit(path: bytes, height: int) -> int:
    """The key bit that chooses a side below a node of ``height`` (MSB-first index 256 - height)."""
    index = 256 - height
    return (path[index // 8] >> (7 - index % 8)) & 1


def naive_subtree(items: dict[bytes, bytes], height: int) -> bytes:
    """Hash of a full subtree of ``height`` levels holding ``items`` (all under one position)."""
    return _naive(frozenset(items.items()), height)


@functools.lru_cache(maxsize=1 << 16)
def _naive(items: frozenset[tuple[bytes, bytes]], height: int) -> bytes:
    if not items:
        return naive_empty(height)
    if height == 0:
        ((_, leaf),) = items
        return leaf
    left = frozenset(item for item in items if not bit(item[0], height))
    return H(b"\x01" + _naive(left, height - 1) + _naive(items - left, height - 1))


@functools.cache
def naive_empty(height: int) -> bytes:
    return H(b"\x00") if height == 0 else H(b"\x01" + naive_empty(height - 1) + naive_empty(height - 1))


def naive_root(items: dict[bytes, bytes]) -> bytes:
    return naive_subtree(items, 256)


def naive_peers(items: dict[bytes, bytes], path: bytes) -> list[bytes]:
    """All 256 siblings of ``path``, bottom-up, from the full tree."""
    peers: list[bytes] = []
    below = dict(items)
    for height in range(256, 0, -1):
        side = bit(path, height)
        peers.append(naive_subtree({k: v for k, v in below.items() if bit(k, height) != side}, height - 1))
        below = {k: v for k, v in below.items() if bit(k, height) == side}
    return peers[::-1]


def common_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 256 - x.bit_length()


def flip(value: bytes, bit_index: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit_index)]) + value[1:]


def random_path(seed: int) -> bytes:
    return H(b"key" + seed.to_bytes(8, "big"))


# ---- scenario.json ----------------------------------------------------------------------------


def scenario_map() -> tuple[MemoryMap, dict[str, AnyHash]]:
    tree, heads = MemoryMap(), {}
    for record in SCENARIO["records"]:
        heads[record["log_id"]] = AnyHash.parse32(record["record_id"])
        tree.set(key_path(AnyHash.parse32(record["log_id"])), map_leaf_hash(heads[record["log_id"]]))
    return tree, heads


def test_empty_table() -> None:
    assert EMPTY[0].hex() == SCENARIO["empty"]["map_E0"] == H(b"\x00").hex()
    assert EMPTY[1].hex() == SCENARIO["empty"]["map_E1"]
    assert EMPTY_ROOT == EMPTY[256] == naive_empty(256)
    assert EMPTY_ROOT.hex() == SCENARIO["empty"]["map_root"]
    assert len(EMPTY) == 257
    assert MemoryMap().root == EMPTY_ROOT


def test_scenario_leaves_and_roots_after_every_append() -> None:
    tree, items = MemoryMap(), {}
    roots = []
    for i, record in enumerate(SCENARIO["records"]):
        log_id, record_id = AnyHash.parse32(record["log_id"]), AnyHash.parse32(record["record_id"])
        assert key_path(log_id) == H(log_id.digest)
        items[key_path(log_id)] = map_leaf_hash(record_id)
        roots.append(tree.set(key_path(log_id), map_leaf_hash(record_id)))
        assert tree.root.hex() == ROOTS[f"len{i + 1}"]["map_root"]
        assert naive_root(items) == tree.root
    _, heads = scenario_map()
    for log_id, leaf_hex in SCENARIO["map_leaf_bytes_hex"].items():
        assert map_leaf_bytes(heads[log_id]).hex() == leaf_hex
        assert map_leaf_hash(heads[log_id]) == H(b"\x00" + bytes.fromhex(leaf_hex))
    # every snapshot root still proves what it held then
    first = AnyHash.parse32(SCENARIO["records"][0]["log_id"])
    first_leaf = map_leaf_hash(AnyHash.parse32(SCENARIO["records"][0]["record_id"]))
    for old_root in roots:
        assert evaluate(key_path(first), first_leaf, tree.prove(key_path(first), old_root)) == old_root


@pytest.mark.parametrize("name", sorted(SCENARIO["map_proof_bundles"]))
def test_scenario_map_proof_bundles(name: str) -> None:
    tree, heads = scenario_map()
    log_id = name.removeprefix("map_proof_bundle_")
    path, leaf = key_path(AnyHash.parse32(log_id)), map_leaf_hash(heads[log_id])
    stored = bytes.fromhex(SCENARIO["map_proof_bundles"][name])
    assert MapProofBundle([prove(tree.root, path, tree)]).encode() == stored
    bundle = MapProofBundle.decode(stored)
    assert bundle.encode() == stored
    assert len(bundle.proofs) == 1
    assert evaluate(path, leaf, bundle.proofs[0]).hex() == ROOTS["len7"]["map_root"]
    assert len(stored) in (2 + 2 * 36, 2 + 3 * 36)  # spec section 10: 74 or 110 bytes


# ---- nodes and proofs, by example -------------------------------------------------------------


def test_lone_key_has_one_peer_and_alone_root_is_its_chain() -> None:
    tree = MemoryMap()
    path, leaf = random_path(1), H(b"leaf")
    tree.set(path, leaf)
    assert tree.root == naive_root({path: leaf})
    assert tree.prove(path) == [EMPTY[255]]
    assert evaluate(path, leaf, [EMPTY[255]]) == tree.root
    assert evaluate(path, leaf, [None]) == tree.root
    assert evaluate(path, leaf, []) == tree.root


def test_update_shares_structure_and_old_roots_stay_provable() -> None:
    tree = MemoryMap()
    items = {random_path(i): H(i.to_bytes(4, "big")) for i in range(300)}
    tree.update(items)
    old_root, old_nodes = tree.root, dict(tree.nodes)
    path = random_path(7)
    peers = tree.prove(path)
    new_root, new = update(old_root, {path: H(b"replaced")}, tree)
    # d branches on the path plus the key's Lone, nothing else
    assert sorted(type(node).__name__ for node in new.values()) == ["Branch"] * len(peers) + ["Lone"]
    tree.nodes.update(new)
    for digest, node in old_nodes.items():
        assert tree.nodes[digest] is node  # nothing rewritten
    assert evaluate(path, items[path], tree.prove(path, old_root)) == old_root
    assert evaluate(path, H(b"replaced"), prove(new_root, path, tree)) == new_root
    assert new_root == naive_root({**items, path: H(b"replaced")})


def test_new_nodes_are_addressed_by_their_hash() -> None:
    items = {random_path(i): H(bytes([i])) for i in range(40)}
    new_root, new = update(EMPTY_ROOT, items, MemoryMap())
    assert new_root == naive_root(items)
    for digest, node in new.items():
        assert decode_node(node.encode()) == node
        if isinstance(node, Branch):
            assert digest == H(b"\x01" + node.left + node.right)
        else:
            assert digest == naive_subtree({node.path: node.leaf}, node.height)


def test_empty_batch_changes_nothing() -> None:
    tree = MemoryMap()
    tree.set(random_path(1), H(b"x"))
    assert update(tree.root, {}, tree) == (tree.root, {})


def test_node_encoding() -> None:
    branch_node: MapNode = Branch(H(b"l"), H(b"r"))
    lone_node: MapNode = Lone(256, H(b"p"), H(b"v"))
    assert branch_node.encode() == b"\x01" + H(b"l") + H(b"r")
    assert lone_node.encode() == b"\x02\x01\x00" + H(b"p") + H(b"v")
    assert decode_node(branch_node.encode()) == branch_node
    assert decode_node(lone_node.encode()) == lone_node
    for bad in (b"", b"\x01" + b"\x00" * 63, b"\x03" + b"\x00" * 64, b"\x02\x01\x01" + b"\x00" * 64):
        with pytest.raises(ProofError, match="malformed map node"):
            decode_node(bad)


def test_absent_keys_and_missing_nodes() -> None:
    tree = MemoryMap()
    with pytest.raises(ProofError, match="not in the map"):
        tree.prove(random_path(1))
    tree.update({random_path(i): H(b"v") for i in range(20)})
    with pytest.raises(ProofError, match="not in the map"):
        tree.prove(random_path(99))
    with pytest.raises(ProofError, match="is not stored"):
        prove(H(b"not a root"), random_path(1), tree)
    with pytest.raises(KeyError):
        update(H(b"not a root"), {random_path(1): H(b"v")}, tree)
    with pytest.raises(ProofError, match="32 bytes"):
        update(tree.root, {b"short": H(b"v")}, tree)


def test_tampered_map_proofs_fail() -> None:
    tree = MemoryMap()
    items = {random_path(i): H(i.to_bytes(4, "big")) for i in range(64)}
    tree.update(items)
    for path, leaf in list(items.items())[:16]:
        peers = tree.prove(path)
        assert evaluate(path, leaf, peers) == tree.root
        assert evaluate(path, flip(leaf), peers) != tree.root
        assert evaluate(flip(path, 7), leaf, peers) != tree.root
        for j in range(len(peers)):
            assert evaluate(path, leaf, [*peers[:j], flip(peers[j]), *peers[j + 1 :]]) != tree.root
        assert evaluate(path, leaf, peers[:-1]) != tree.root
    with pytest.raises(ProofError, match="more than 256"):
        evaluate(random_path(0), H(b"v"), [None] * 257)


# ---- properties against the naive reference ---------------------------------------------------

# Keys that share their 30 middle bytes: deep splits, long Lone chains, and pairs of keys whose low
# bits agree (so their Lone subtrees can hash alike) -- the hard cases for a hash-addressed tree.
structured_keys = st.builds(
    lambda a, b: bytes([a]) + bytes(30) + bytes([b]),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 128, 255]),
)
random_keys = st.integers(0, 2**32).map(random_path)
leaves = st.sampled_from([H(b"a"), H(b"b"), H(b"c")])
batches = st.lists(
    st.dictionaries(st.one_of(structured_keys, random_keys), leaves, max_size=8), min_size=1, max_size=6
)


@settings(max_examples=60)
@given(batches=batches)
def test_batches_match_naive_and_every_old_root_stays_provable(batches: list[dict[bytes, bytes]]) -> None:
    tree = MemoryMap()
    snapshots: list[tuple[bytes, dict[bytes, bytes]]] = []
    items: dict[bytes, bytes] = {}
    for batch in batches:
        tree.update(batch)
        items = {**items, **batch}
        assert tree.root == naive_root(items)
        snapshots.append((tree.root, items))
    for old_root, old_items in snapshots:
        for path, leaf in old_items.items():
            peers = prove(old_root, path, tree)
            assert evaluate(path, leaf, peers) == old_root
            others = [common_prefix(path, other) for other in old_items if other != path]
            assert len(peers) == 1 + max(others, default=0)  # d = 1 + longest common prefix
            full = naive_peers(old_items, path)
            assert peers == full[256 - len(peers) :]
            assert full[: 256 - len(peers)] == EMPTY[: 256 - len(peers)]
            decoded = MapProofBundle.decode(MapProofBundle([peers]).encode()).proofs[0]
            assert evaluate(path, leaf, decoded) == old_root
            if peers:
                assert evaluate(path, leaf, [flip(peers[0]), *peers[1:]]) != old_root
            assert evaluate(path, flip(leaf), peers) != old_root


@given(
    proofs=st.lists(
        st.lists(st.one_of(st.none(), st.binary(min_size=32, max_size=32)), max_size=5), max_size=4
    )
)
def test_bundle_roundtrip(proofs: list[list[bytes | None]]) -> None:
    encoded = MapProofBundle(proofs).encode()
    assert MapProofBundle.decode(encoded) == MapProofBundle(proofs)
    if proofs and proofs[0]:
        assert encoded[0] == 0x0A


def test_bundle_wire_form() -> None:
    peer = H(b"p")
    assert MapProofBundle([[peer, None]]).encode() == bytes.fromhex("0a26" + "0a220a20" + peer.hex() + "0a00")


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"\x0a\x05", b"\x0a\x04\x0a\x02\x0a\x00", bytes.fromhex("0a050a030a0101")],
)
def test_malformed_bundle_bytes_are_proof_errors(data: bytes) -> None:
    with pytest.raises(ProofError):
        MapProofBundle.decode(data)


@settings(max_examples=300)
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_never_crash_the_client(data: bytes) -> None:
    try:
        bundle = MapProofBundle.decode(data)
    except ProofError:
        return
    for peers in bundle.proofs:
        assert len(evaluate(random_path(0), H(b"v"), peers)) == 32


def test_lone_subtrees_that_hash_alike_stay_correct() -> None:
    # Two keys differing only in the first bit, same leaf: their height-255 Lones have one hash,
    # so the store keeps one node for both; each must still prove, and split later, as itself.
    low = bytes(31) + b"\x01"
    first, second, third = b"\x00" + low[1:], b"\x80" + low[1:], b"\x00" + bytes(30) + b"\x03"
    leaf = H(b"same")
    tree = MemoryMap()
    tree.update({first: leaf, second: leaf})
    lones = [node for node in tree.nodes.values() if isinstance(node, Lone)]
    assert len(lones) == 1
    for path in (first, second):
        assert evaluate(path, leaf, tree.prove(path)) == tree.root
    tree.update({third: H(b"new")})
    items = {first: leaf, second: leaf, third: H(b"new")}
    assert tree.root == naive_root(items)
    for path, value in items.items():
        peers = tree.prove(path)
        assert peers == naive_peers(items, path)[256 - len(peers) :]
        assert evaluate(path, value, peers) == tree.root
