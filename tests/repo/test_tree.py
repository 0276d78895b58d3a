"""Trees are untrusted input to restore: decoding may only ever raise TreeFormatError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.repo import DIR, FILE, SYMLINK, Node, TreeFormatError, decode_tree, encode_tree

ID = bytes(range(32))

# Any msgpack value, a little nested.
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3) | st.binary(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)

# Entries close to valid ones, so that decoding gets past the first checks.
names = st.binary(min_size=1, max_size=12).filter(
    lambda n: b"/" not in n and b"\x00" not in n and n not in (b".", b"..")
)
entry_fields = {
    "n": names | msgpack_values,
    "t": st.sampled_from("fdlcbps") | msgpack_values,
    "m": st.integers(0, 0o7777) | msgpack_values,
    "u": st.integers(0, 2**32) | msgpack_values,
    "s": st.integers(-1, 2**40) | msgpack_values,
    "c": st.lists(st.just(ID) | st.binary(max_size=33), max_size=3) | msgpack_values,
    "sub": st.just(ID) | msgpack_values,
    "l": st.binary(max_size=8) | msgpack_values,
    "x": st.dictionaries(st.binary(max_size=4), st.binary(max_size=4), max_size=2) | msgpack_values,
}
entries = st.fixed_dictionaries({}, optional=entry_fields)
trees = st.fixed_dictionaries(
    {"v": st.just(1) | msgpack_values, "e": st.lists(entries, max_size=4) | msgpack_values}
)


def _check_decode(data: bytes) -> None:
    try:
        nodes = decode_tree(data)
    except TreeFormatError:
        return
    assert len({n.name for n in nodes}) == len(nodes)
    for node in nodes:
        assert node.name and b"/" not in node.name and node.name not in (b".", b"..")
        assert node.type in "fdlcbps" and len(node.type) == 1
        assert 0 <= node.mode <= 0o7777 and node.size >= 0
        assert node.type != DIR or node.subtree is not None


@given(st.binary(max_size=300))
@example(b"")
@example(b"\x81\xa1v\x01")  # {"v": 1} and no entries
@example(b"\x82\xa1v\x01\xa1e\xdd\xff\xff\xff\xff")  # a list header claiming 2**32-1 items
def test_decode_tree_fuzz_bytes_raises_only_tree_format_error(data):
    _check_decode(data)


@given(trees)
@example({"v": 1, "e": [{"n": b"a", "t": []}]})  # an unhashable type field
@example({"v": 1, "e": [{"n": b"a", "t": {}}]})
def test_decode_tree_fuzz_structured_raises_only_tree_format_error(doc):
    _check_decode(msgpack.packb(doc, use_bin_type=True))


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 2, "e": []},
        {"e": []},
        [1, []],
        {"v": 1},
        {"v": 1, "e": {}},
        {"v": 1, "e": [1]},
        {"v": 1, "e": [{"n": b"..", "t": "f"}]},
        {"v": 1, "e": [{"n": b"a/b", "t": "f"}]},
        {"v": 1, "e": [{"n": b"", "t": "f"}]},
        {"v": 1, "e": [{"n": "text", "t": "f"}]},
        {"v": 1, "e": [{"n": b"a", "t": "f"}, {"n": b"a", "t": "f"}]},
        {"v": 1, "e": [{"n": b"a", "t": "q"}]},
        {"v": 1, "e": [{"n": b"a", "t": "d"}]},
        {"v": 1, "e": [{"n": b"a", "t": "f", "s": -1}]},
        {"v": 1, "e": [{"n": b"a", "t": "f", "m": True}]},
        {"v": 1, "e": [{"n": b"a", "t": "f", "c": [b"short"]}]},
        {"v": 1, "e": [{"n": b"a", "t": "f", "x": {b"k": 1}}]},
    ],
    ids=[
        "version_2",
        "no_version",
        "not_a_map",
        "no_entries",
        "entries_not_a_list",
        "entry_not_a_map",
        "dotdot",
        "slash",
        "empty_name",
        "text_name",
        "duplicate",
        "unknown_type",
        "dir_without_subtree",
        "negative_size",
        "bool_mode",
        "short_chunk_id",
        "bad_xattr",
    ],
)
def test_decode_tree_rejects(doc):
    with pytest.raises(TreeFormatError):
        decode_tree(msgpack.packb(doc, use_bin_type=True))


node_lists = st.lists(
    st.one_of(
        st.builds(
            Node,
            name=names,
            type=st.just(FILE),
            mode=st.integers(0, 0o7777),
            size=st.integers(0, 2**40),
            chunks=st.lists(st.binary(min_size=32, max_size=32), max_size=3),
        ),
        st.builds(Node, name=names, type=st.just(DIR), subtree=st.just(ID)),
        st.builds(Node, name=names, type=st.just(SYMLINK), target=st.binary(max_size=20)),
    ),
    max_size=6,
    unique_by=lambda n: n.name,
)


@given(node_lists)
def test_encode_decode_tree_round_trip(nodes):
    decoded = decode_tree(encode_tree(nodes))
    assert [n.name for n in decoded] == sorted(n.name for n in nodes)
    by_name = {n.name: n for n in nodes}
    for node in decoded:
        original = by_name[node.name]
        assert node.same_content(original) and node.same_metadata(original)
