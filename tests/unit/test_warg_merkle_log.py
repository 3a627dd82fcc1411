"""The verifiable log (specs/warg.md section 6): vectors, a naive RFC 6962 reference, proof failures.

The incremental code never sees a whole tree, so it is checked against the
obvious recursive definitions: every root, every stored node, every proof's
evaluation must agree with them. scenario.json pins the bytes upstream emits.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.warg.errors import ProofError
from cairn.warg.hashes import AnyHash
from cairn.warg.merkle_log import (
    EMPTY_ROOT,
    LogProofBundle,
    MemoryLog,
    appended_nodes,
    branch,
    broots,
    evaluate_consistency,
    evaluate_inclusion,
    leaf_hash,
    log_leaf_bytes,
    node_exists,
    prove_consistency,
    prove_inclusion,
    root,
    walk,
)

SCENARIO: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "warg" / "scenario.json").read_text()
)
ROOTS = SCENARIO["roots_by_length"]


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---- naive reference --------------------------------------------------------------------------


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH over leaf hashes: split at the largest power of two below n."""
    if not leaves:
        return H(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return H(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:]))


def naive_node(index: int, leaves: list[bytes]) -> bytes:
    """Hash of complete in-order node ``index``: the MTH of the 2^h leaves it spans."""
    h = ((index + 1) & -(index + 1)).bit_length() - 1
    first = (index - ((1 << h) - 1)) // 2
    return naive_root(leaves[first : first + (1 << h)])


def leaves_of(count: int, seed: int = 0) -> list[bytes]:
    return [H(b"\x00" + seed.to_bytes(4, "big") + i.to_bytes(8, "big")) for i in range(count)]


def log_of(leaves: list[bytes]) -> MemoryLog:
    log = MemoryLog()
    for leaf in leaves:
        log.append(leaf)
    return log


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


# ---- scenario.json ----------------------------------------------------------------------------


def scenario_log() -> tuple[MemoryLog, list[bytes]]:
    log, leaves = MemoryLog(), []
    for record in SCENARIO["records"]:
        leaves.append(leaf_hash(AnyHash.parse32(record["log_id"]), AnyHash.parse32(record["record_id"])))
        log.append(leaves[-1])
    return log, leaves


def test_scenario_leaves_and_roots_after_every_append() -> None:
    log = MemoryLog()
    for i, record in enumerate(SCENARIO["records"]):
        log_id, record_id = AnyHash.parse32(record["log_id"]), AnyHash.parse32(record["record_id"])
        assert log_leaf_bytes(log_id, record_id).hex() == SCENARIO["log_leaf_bytes_hex"][i]
        leaf = leaf_hash(log_id, record_id)
        assert leaf.hex() == SCENARIO["log_leaf_hashes_hex"][i]
        assert log.append(leaf) == i
        assert log.length == i + 1
        assert log.root().hex() == ROOTS[f"len{i + 1}"]["log_root"]
    assert [2 * i for i in range(log.length)] == SCENARIO["in_order_leaf_nodes"]
    for length in range(1, 8):  # every old root stays computable from the same immutable nodes
        assert root(length, log).hex() == ROOTS[f"len{length}"]["log_root"]


def test_empty_root() -> None:
    assert EMPTY_ROOT.hex() == SCENARIO["empty"]["log_root"]
    assert root(0, MemoryLog()) == EMPTY_ROOT == MemoryLog().root()


@pytest.mark.parametrize("name", sorted(SCENARIO["log_inclusion_bundles"]))
def test_scenario_inclusion_bundles(name: str) -> None:
    log, leaves = scenario_log()
    indices = list(range(7)) if name.endswith("all_at_7") else [int(name.split("leaf")[1].split("_")[0])]
    stored = bytes.fromhex(SCENARIO["log_inclusion_bundles"][name])
    assert prove_inclusion(7, indices, log).encode() == stored
    bundle = LogProofBundle.decode(stored)
    assert bundle.encode() == stored
    for index in indices:
        assert evaluate_inclusion(bundle, index, leaves[index]).hex() == ROOTS["len7"]["log_root"]


@pytest.mark.parametrize("old", range(1, 8))
def test_scenario_consistency_bundles(old: int) -> None:
    log, _ = scenario_log()
    stored = bytes.fromhex(SCENARIO["log_consistency_bundles"][f"log_consistency_bundle_{old}_7"])
    assert prove_consistency(old, 7, log).encode() == stored
    old_root, new_root = evaluate_consistency(LogProofBundle.decode(stored))
    assert old_root.hex() == ROOTS[f"len{old}"]["log_root"]
    assert new_root.hex() == ROOTS["len7"]["log_root"]


def test_spec_example_bytes() -> None:
    log, _ = scenario_log()
    encoded = prove_inclusion(7, [0], log).encode()
    assert encoded.startswith(bytes.fromhex("08071a010022240802"))
    assert sorted(prove_inclusion(7, [0], log).hashes) == [2, 5, 9, 12]


# ---- node numbering ---------------------------------------------------------------------------


def test_walks_match_upstream_unit_vectors() -> None:
    assert walk(6, 7) == [4, 1, 12, 9]
    assert walk(0, 2) == [2]
    assert walk(0, 3) == [2, 4]
    assert walk(2, 3) == [0, 4]
    assert walk(4, 3) == [1]
    assert walk(3, 7) == [12, 9]  # a broot: no siblings
    assert walk(12, 7) == [9, 3]  # the rightmost broot: left broots, nearest first


@pytest.mark.parametrize(
    ("length", "expected"),
    [(0, []), (1, [0]), (2, [1]), (3, [1, 4]), (4, [3]), (5, [3, 8]), (6, [3, 9]), (7, [3, 9, 12]), (8, [7])],
)
def test_broots(length: int, expected: list[int]) -> None:
    assert broots(length) == expected


def test_node_exists() -> None:
    assert [n for n in range(16) if node_exists(n, 3)] == [0, 1, 2, 4]
    assert [n for n in range(16) if node_exists(n, 7)] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 12]
    assert not node_exists(-2, 7)


def test_appended_nodes_completes_parents_bottom_up() -> None:
    log = log_of(leaves_of(3))
    leaf = leaves_of(4)[3]
    added = appended_nodes(3, leaf, log)
    assert [node for node, _ in added] == [6, 5, 3]
    assert added[-1][1] == naive_root([*leaves_of(3), leaf])


# ---- properties against the naive reference ---------------------------------------------------

lengths = st.integers(min_value=1, max_value=130)


@given(count=lengths, seed=st.integers(0, 2**16))
def test_roots_and_nodes_match_naive(count: int, seed: int) -> None:
    leaves = leaves_of(count, seed)
    log = MemoryLog()
    for i, leaf in enumerate(leaves):
        for node, value in appended_nodes(i, leaf, log):
            assert value == naive_node(node, leaves)
        log.append(leaf)
        assert log.root() == naive_root(leaves[: i + 1])
    for length in range(count + 1):
        assert root(length, log) == naive_root(leaves[:length])


@given(data=st.data(), count=lengths, seed=st.integers(0, 2**16))
def test_inclusion_proofs_evaluate_to_naive_roots(data: st.DataObject, count: int, seed: int) -> None:
    leaves = leaves_of(count, seed)
    log = log_of(leaves)
    length = data.draw(st.integers(1, count), label="length")
    expected = naive_root(leaves[:length])
    indices = data.draw(st.lists(st.integers(0, length - 1), min_size=1, max_size=6), label="indices")
    bundle = LogProofBundle.decode(prove_inclusion(length, indices, log).encode())
    assert bundle.log_length == length
    assert bundle.included_indices == [2 * i for i in indices]
    for node, value in bundle.hashes.items():
        assert value == naive_node(node, leaves)
    for index in indices:
        assert evaluate_inclusion(bundle, index, leaves[index]) == expected
    for index in range(length):  # every single-leaf bundle, with the tampering cases
        one = prove_inclusion(length, [index], log)
        assert evaluate_inclusion(one, index, leaves[index]) == expected
        assert evaluate_inclusion(one, index, flip(leaves[index])) != expected
        for node in one.hashes:
            tampered = LogProofBundle(
                length, [], one.included_indices, {**one.hashes, node: flip(one.hashes[node])}
            )
            assert evaluate_inclusion(tampered, index, leaves[index]) != expected


@given(data=st.data(), count=lengths, seed=st.integers(0, 2**16))
def test_consistency_proofs_evaluate_to_naive_roots(data: st.DataObject, count: int, seed: int) -> None:
    leaves = leaves_of(count, seed)
    log = log_of(leaves)
    new = data.draw(st.integers(1, count), label="new")
    old = data.draw(st.integers(1, new), label="old")
    bundle = LogProofBundle.decode(prove_consistency(old, new, log).encode())
    assert (bundle.log_length, bundle.consistent_lengths, bundle.included_indices) == (new, [old], [])
    for node, value in bundle.hashes.items():
        assert value == naive_node(node, leaves)
    expected = (naive_root(leaves[:old]), naive_root(leaves[:new]))
    assert evaluate_consistency(bundle) == expected
    for node in bundle.hashes:
        tampered = LogProofBundle(new, [old], [], {**bundle.hashes, node: flip(bundle.hashes[node], 3)})
        try:
            assert evaluate_consistency(tampered) != expected
        except ProofError as exc:
            assert exc.message == "constituent inclusion proofs diverge produce different roots"


# ---- errors -----------------------------------------------------------------------------------


def test_build_errors_use_upstream_texts() -> None:
    log = log_of(leaves_of(7))
    with pytest.raises(ProofError, match=exactly("A bundle can not be made from no proofs")):
        prove_inclusion(7, [], log)
    with pytest.raises(ProofError, match=exactly("A bundle can not be made from no proofs")):
        prove_consistency(0, 7, log)
    with pytest.raises(ProofError, match=exactly("tries to prove later value comes before earlier")):
        prove_consistency(5, 3, log)
    with pytest.raises(ProofError, match=exactly("leaf newer than when it should be included")):
        prove_inclusion(7, [0, 7], log)
    with pytest.raises(ProofError, match=exactly("leaf newer than when it should be included")):
        prove_inclusion(3, [3], log)
    with pytest.raises(ProofError, match=exactly("Necessary hash not found")):  # a length past the stored log
        prove_inclusion(9, [0], log)
    with pytest.raises(ProofError, match=exactly("Necessary hash not found")):
        prove_consistency(3, 8, log)


def test_client_rejects_bundles_that_do_not_fit() -> None:
    log, leaves = log_of(leaves_of(7)), leaves_of(7)
    inclusion = prove_inclusion(7, [2], log)
    with pytest.raises(ProofError, match="does not prove registry index 3"):
        evaluate_inclusion(inclusion, 3, leaves[3])
    missing = LogProofBundle(7, [], [4], {k: v for k, v in inclusion.hashes.items() if k != 1})
    with pytest.raises(ProofError, match=exactly("required hash for proof is not available")):
        evaluate_inclusion(missing, 2, leaves[2])
    with pytest.raises(ProofError, match=exactly("leaf newer than when it should be included")):
        evaluate_inclusion(LogProofBundle(2, [], [4], inclusion.hashes), 2, leaves[2])
    consistency = prove_consistency(3, 7, log)
    for bad in (
        LogProofBundle(7, [], [], consistency.hashes),
        LogProofBundle(7, [3, 3], [], consistency.hashes),
        LogProofBundle(7, [3], [4], consistency.hashes),
    ):
        with pytest.raises(ProofError, match="exactly one consistency proof"):
            evaluate_consistency(bad)
    with pytest.raises(ProofError, match=exactly("tries to prove later value comes before earlier")):
        evaluate_consistency(LogProofBundle(2, [3], [], consistency.hashes))
    with pytest.raises(ProofError, match=exactly("A bundle can not be made from no proofs")):
        evaluate_consistency(LogProofBundle(7, [0], [], consistency.hashes))
    with pytest.raises(ProofError, match=exactly("required hash for proof is not available")):
        evaluate_consistency(
            LogProofBundle(7, [3], [], {k: v for k, v in consistency.hashes.items() if k != 4})
        )


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"\x08",
        b"\x22\x05\x08\x01\x12\x01\x00",  # a 1-byte hash
        bytes.fromhex(SCENARIO["log_inclusion_bundles"]["log_inclusion_bundle_leaf0_at_7"])[:-3],
        bytes.fromhex(
            "0807" + "22240802" + "1220" + "00" * 32 + "22240802" + "1220" + "11" * 32
        ),  # node 2 twice
    ],
)
def test_malformed_bundle_bytes_are_proof_errors(data: bytes) -> None:
    with pytest.raises(ProofError):
        LogProofBundle.decode(data)


@settings(max_examples=300)
@given(data=st.binary(max_size=120), index=st.integers(0, 40))
def test_arbitrary_bytes_never_crash_the_client(data: bytes, index: int) -> None:
    try:
        bundle = LogProofBundle.decode(data)
    except ProofError:
        return
    for check in (
        lambda: evaluate_inclusion(bundle, index, b"\x00" * 32),
        lambda: evaluate_consistency(bundle),
    ):
        try:
            value = check()
        except ProofError:
            continue
        assert value


def test_branch_is_rfc6962_node_hash() -> None:
    left, right = H(b"l"), H(b"r")
    assert branch(left, right) == H(b"\x01" + left + right)
    assert leaf_hash(AnyHash.of(b"a"), AnyHash.of(b"b")) == H(
        b"\x00" + log_leaf_bytes(AnyHash.of(b"a"), AnyHash.of(b"b"))
    )
