"""spead2.ItemGroup: the mapping interface, add_item, descriptor replacement and update()."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
from fakeheap import FakeHeap, descriptor_packet, immediate, numpy_header, raw, raw_descriptor

import spead2

U8_PAIR = raw_descriptor(0x1000, b"a", b"d", [2], [("u", 8)])


def versions(group: spead2.ItemGroup) -> list[tuple[int, str, int]]:
    return sorted((item.id, item.name, item.version) for item in group.values())


class TestMapping:
    def test_indexing(self) -> None:
        group = spead2.ItemGroup()
        a = group.add_item(0x1000, "a", "d", (), np.uint8)
        assert group["a"] is a and group[0x1000] is a and group[np.int64(0x1000)] is a
        assert "a" in group and 0x1000 in group and np.uint16(0x1000) in group
        assert "b" not in group and 5 not in group and 4096.0 not in group
        assert len(group) == 1

    def test_missing_keys(self) -> None:
        group = spead2.ItemGroup()
        group.add_item(0x1000, "a", "d", (), np.uint8)
        for key in ("b", 5, 4096.0):
            with pytest.raises(KeyError) as info:
                group[key]  # type: ignore[index]
            assert info.value.args == (key,)
        with pytest.raises(TypeError):
            [] in group  # noqa: B015

    def test_views(self) -> None:
        group = spead2.ItemGroup()
        a = group.add_item(0x1001, "a", "d", (), np.uint8)
        b = group.add_item(0x1000, "b", "d", (), np.uint8)
        assert list(group.keys()) == ["a", "b"]
        assert list(group.ids()) == [0x1001, 0x1000]
        assert list(group.values()) == [a, b]
        assert list(group.items()) == [("a", a), ("b", b)]
        assert type(group.keys()).__name__ == "dict_keys"

    def test_module(self) -> None:
        assert spead2.ItemGroup.__module__ == "spead2"


class TestAddItem:
    def test_automatic_ids(self) -> None:
        group = spead2.ItemGroup()
        assert group.add_item(None, "a", "d", (), np.uint8).id == 0x1000
        assert group.add_item(None, "b", "d", (), np.uint8).id == 0x1001
        group.add_item(0x1003, "c", "d", (), np.uint8)
        group.add_item(0x10, "d", "d", (), np.uint8)
        assert group.add_item(None, "e", "d", (), np.uint8).id == 0x1002
        assert group.add_item(None, "f", "d", (), np.uint8).id == 0x1004
        # the lowest free id is used again once an item is replaced away
        group.add_item(0x2000, "a", "d", (), np.uint8)
        assert group.add_item(name="g", description="d", shape=(), dtype=np.uint8, id=None).id == 0x1000

    def test_returns_the_new_item(self) -> None:
        group = spead2.ItemGroup()
        item = group.add_item(0x1000, "a", "d", (2,), format=[("u", 8)], value=[1, 2])
        assert isinstance(item, spead2.Item)
        assert (item.version, item.value) == (1, [1, 2])

    def test_identical_descriptor_keeps_the_old_item(self) -> None:
        group = spead2.ItemGroup()
        old = group.add_item(0x1000, "x", "d", (), np.uint8, value=5)
        old.value = 6
        new = group.add_item(0x1000, "x", "d", [], np.uint8)  # a list shape is the same shape
        assert new is not old and group["x"] is old
        assert (old.version, old.value) == (2, 6)

    def test_identical_descriptor_with_a_value_assigns_it(self) -> None:
        group = spead2.ItemGroup()
        old = group.add_item(0x1000, "x", "d", (), np.uint8, value=5)
        new = group.add_item(0x1000, "x", "d", (), np.uint8, value=9)
        assert group["x"] is old and new.version == 1
        assert (old.version, old.value) == (2, 9)

    @pytest.mark.parametrize(
        "change",
        [
            {"description": "other"},
            {"shape": (1,)},
            {"dtype": ">u2"},
            {"order": "F"},
            {"dtype": None, "format": [("u", 8)]},
        ],
    )
    def test_changed_descriptor_replaces(self, change: dict[str, object]) -> None:
        group = spead2.ItemGroup()
        old = group.add_item(0x1000, "x", "d", (), "<u2", value=5)
        for _ in range(3):
            old.value = 5
        kwargs: dict[str, object] = {
            "id": 0x1000,
            "name": "x",
            "description": "d",
            "shape": (),
            "dtype": "<u2",
        } | change
        new = group.add_item(**kwargs)
        assert group["x"] is new and group[0x1000] is new
        assert (new.version, new.value) == (5, None)

    def test_format_lists_must_match_exactly(self) -> None:
        group = spead2.ItemGroup()
        group.add_item(0x1000, "v", "d", (1,), format=[("u", 8)])
        new = group.add_item(0x1000, "v", "d", (1,), format=[["u", 8]])
        assert group["v"] is new and new.version == 2

    def test_rename(self) -> None:
        group = spead2.ItemGroup()
        group.add_item(0x1000, "x", "d", (), np.uint8)
        new = group.add_item(0x1000, "y", "d", (), np.uint8)
        assert list(group.keys()) == ["y"] and group[0x1000] is new and new.version == 2

    def test_name_moves_to_a_new_id(self) -> None:
        group = spead2.ItemGroup()
        group.add_item(0x1000, "x", "d", (), np.uint8)
        new = group.add_item(0x2000, "x", "d", (), np.uint8)
        assert list(group.ids()) == [0x2000] and group["x"] is new

    def test_clobbering_two_items(self) -> None:
        group = spead2.ItemGroup()
        x = group.add_item(0x1000, "x", "d", (), np.uint8, value=1)
        y = group.add_item(0x2000, "y", "d", (), np.uint8, value=1)
        for _ in range(10):
            y.value = 1
        x.value = 1
        new = group.add_item(0x2000, "x", "d", (), np.uint8)
        assert versions(group) == [(0x2000, "x", 12)]
        assert new.version == 12

    def test_replacement_moves_to_the_end(self) -> None:
        group = spead2.ItemGroup()
        for name, item_id in [("a", 1), ("b", 2), ("c", 3)]:
            group.add_item(item_id, name, "", (), np.uint8)
        group.add_item(1, "a", "new", (), np.uint8)
        assert list(group.keys()) == ["b", "c", "a"]
        assert list(group.ids()) == [2, 3, 1]


class TestUpdate:
    def test_descriptor_then_value(self) -> None:
        group = spead2.ItemGroup()
        heap = FakeHeap([raw(0x1000, b"\1\2")], [U8_PAIR])
        updated = group.update(heap)
        assert list(updated) == ["a"]
        assert updated["a"] is group["a"]
        assert updated["a"].value.tolist() == [1, 2]
        assert versions(group) == [(0x1000, "a", 3)]  # created (1), then +2 per value

    def test_descriptor_payloads(self) -> None:
        payload = descriptor_packet(0x1000, b"a", b"d", [None], [("c", 8)])
        group = spead2.ItemGroup()
        updated = group.update(FakeHeap([raw(0x1000, b"hello")], descriptor_payloads=[payload]))
        assert updated["a"].value == "hello"

    def test_descriptor_only_heap(self) -> None:
        group = spead2.ItemGroup()
        assert group.update(FakeHeap([], [U8_PAIR])) == {}
        assert versions(group) == [(0x1000, "a", 1)]
        assert group["a"].value is None

    def test_versions_over_heaps(self) -> None:
        group = spead2.ItemGroup()
        group.update(FakeHeap([], [U8_PAIR]))
        for expected in (3, 5):
            group.update(FakeHeap([raw(0x1000, b"\1\2")]))
            assert group["a"].version == expected
        with pytest.raises(ValueError, match="too few elements"):
            group.update(FakeHeap([raw(0x1000, b"\1")]))
        assert group["a"].version == 5
        group.update(FakeHeap([], [U8_PAIR]))  # identical descriptor: nothing happens
        assert group["a"].version == 5
        group.update(FakeHeap([raw(0x1000, b"\1\2")], [U8_PAIR]))
        assert group["a"].version == 7

    def test_changed_descriptor_resets_the_value(self) -> None:
        group = spead2.ItemGroup()
        group.update(FakeHeap([raw(0x1000, b"\1\2")], [U8_PAIR]))
        old = group["a"]
        group.update(FakeHeap([], [raw_descriptor(0x1000, b"a", b"d", [1], [("u", 16)])]))
        new = group["a"]
        assert new is not old and new.value is None and new.version == 4
        group.update(FakeHeap([raw(0x1000, b"\1\2")]))
        assert group["a"].value.tolist() == [258] and group["a"].version == 6

    def test_same_id_twice_in_a_heap(self) -> None:
        group = spead2.ItemGroup()
        group.update(FakeHeap([], [U8_PAIR, raw_descriptor(0x1001, b"b", shape=[1], format=[("u", 8)])]))
        updated = group.update(FakeHeap([raw(0x1000, b"\1\2"), raw(0x1001, b"\3"), raw(0x1000, b"\5\6")]))
        assert list(updated) == ["a", "b"]
        assert updated["a"].value.tolist() == [5, 6]
        assert versions(group) == [(0x1000, "a", 5), (0x1001, "b", 3)]

    def test_unknown_items_are_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        group = spead2.ItemGroup()
        heap = FakeHeap(
            [raw(0x7, b"xy"), raw(0x1000, b"\1\2"), immediate(spead2.STREAM_CTRL_ID, 0), immediate(0x20, 5)],
            [U8_PAIR],
        )
        with caplog.at_level(logging.WARNING, logger="spead2"):
            updated = group.update(heap)
        assert list(updated) == ["a"]
        assert caplog.messages == [
            "Item with ID 0x7 received but there is no descriptor",
            "Item with ID 0x20 received but there is no descriptor",
        ]

    def test_protocol_ids_are_skipped_even_with_a_descriptor(self) -> None:
        group = spead2.ItemGroup()
        group.add_item(spead2.STREAM_CTRL_ID, "ctrl", "", (), format=[("u", 40)])
        assert (
            group.update(FakeHeap([immediate(spead2.STREAM_CTRL_ID, spead2.CTRL_DESCRIPTOR_REISSUE)])) == {}
        )

    def test_new_order(self) -> None:
        group = spead2.ItemGroup()
        heap = FakeHeap(
            [raw(0x1000, b"\0\1")], [raw_descriptor(0x1000, b"a", numpy_header=numpy_header(">u2", (1,)))]
        )
        assert group.update(heap, "|")["a"].value.dtype == np.dtype(">u2")
        assert group.update(heap)["a"].value.dtype == np.dtype("=u2")

    def test_flavour_bug_compat_applies(self) -> None:
        group = spead2.ItemGroup()
        flavour = spead2.Flavour(4, 64, 40, spead2.BUG_COMPAT_SWAP_ENDIAN)
        descriptor = raw_descriptor(0x1000, b"a", numpy_header=numpy_header("<u2", (1,)))
        updated = group.update(FakeHeap([raw(0x1000, b"\0\1")], [descriptor], flavour=flavour), "|")
        assert updated["a"].dtype == np.dtype(">u2")
        assert updated["a"].value.tolist() == [1]

    def test_errors_leave_earlier_updates(self) -> None:
        group = spead2.ItemGroup()
        group.update(FakeHeap([], [U8_PAIR, raw_descriptor(0x1001, b"s", shape=[None], format=[("c", 8)])]))
        with pytest.raises(UnicodeDecodeError):
            group.update(FakeHeap([raw(0x1000, b"\1\2"), raw(0x1001, b"\xff"), raw(0x1000, b"\3\4")]))
        assert group["a"].value.tolist() == [1, 2]
        assert versions(group) == [(0x1000, "a", 3), (0x1001, "s", 1)]

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need Python 3.11")
    def test_errors_name_the_item_in_a_note(self) -> None:
        group = spead2.ItemGroup()
        bad = raw_descriptor(0x1001, b"bad", shape=[1], format=[("z", 8)])
        with pytest.raises(ValueError) as info:
            group.update(FakeHeap([], [bad]))
        assert str(info.value) == "illegal format (z, 8)"  # the message itself is the reference's
        assert info.value.__notes__ == ["in the descriptor of item 0x1001 (b'bad')"]
        group.update(FakeHeap([], [U8_PAIR]))
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(1 < 2\)") as info:
            group.update(FakeHeap([raw(0x1000, b"\1")]))
        assert info.value.__notes__ == ["in the value of item 0x1000 ('a')"]

    def test_bad_descriptor_stops_the_update(self) -> None:
        group = spead2.ItemGroup()
        bad = raw_descriptor(0x1001, b"bad", numpy_header=b"{'descr': '<u2', 'shape': (2,)}")
        with pytest.raises(ValueError, match="Descriptor does not contain the correct keys"):
            group.update(FakeHeap([raw(0x1000, b"\1\2")], [U8_PAIR, bad]))
        assert versions(group) == [(0x1000, "a", 1)]  # added, but its value was never reached

    def test_incomplete_heap(self) -> None:
        class Incomplete:
            cnt = 1
            flavour = spead2.Flavour()

            def get_items(self) -> list[object]:
                return []

        with pytest.raises(AttributeError):
            spead2.ItemGroup().update(Incomplete())  # type: ignore[arg-type]
