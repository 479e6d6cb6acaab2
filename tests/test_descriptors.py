"""RawDescriptor, and parse_descriptors: the SPEAD packets inside DESCRIPTOR_ID items."""

from __future__ import annotations

import logging

import pytest
import vectors
from fakeheap import descriptor_items, descriptor_packet, heap_packet, heap_packets, packet_bytes, pointer

import spead2
from spead2._descriptors import parse_descriptors

FLAVOUR = spead2.Flavour()
PYSPEAD = spead2.BUG_COMPAT_PYSPEAD_0_5_2
HEADER = b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}"


def parse(*payloads: bytes, bug_compat: int = 0) -> list[spead2.RawDescriptor]:
    return parse_descriptors(payloads, spead2.Flavour(4, 64, 40, bug_compat))


def summary(raw: spead2.RawDescriptor) -> tuple[object, ...]:
    return (raw.id, raw.name, raw.description, raw.shape, raw.format, raw.numpy_header)


def names(descriptors: list[spead2.RawDescriptor]) -> list[bytes]:
    return [d.name for d in descriptors]


class TestRawDescriptor:
    def test_defaults(self) -> None:
        raw = spead2.RawDescriptor()
        assert summary(raw) == (0, b"", b"", [], [], b"")

    def test_fields_round_trip(self) -> None:
        raw = spead2.RawDescriptor()
        raw.id = 0x1234
        raw.name = b"name"
        raw.description = b"desc"
        raw.numpy_header = b"{}"
        raw.format = [["u", 8], ("i", 12)]
        raw.shape = (2, None)
        assert summary(raw) == (0x1234, b"name", b"desc", [2, None], [("u", 8), ("i", 12)], b"{}")

    def test_negative_dimension_is_variable(self) -> None:
        raw = spead2.RawDescriptor()
        raw.shape = [-1, 3, -2]
        assert raw.shape == [None, 3, None]

    def test_lists_are_copies(self) -> None:
        raw = spead2.RawDescriptor()
        raw.format = [("u", 8)]
        raw.format.append(("i", 8))
        raw.shape = [1]
        raw.shape.append(2)
        assert raw.format == [("u", 8)]
        assert raw.shape == [1]

    @pytest.mark.parametrize("field", ["name", "description", "numpy_header"])
    def test_strings_must_be_bytes(self, field: str) -> None:
        raw = spead2.RawDescriptor()
        with pytest.raises(TypeError):
            setattr(raw, field, "text")
        with pytest.raises(TypeError):
            setattr(raw, field, bytearray(b"x"))

    def test_id_is_signed_64_bit(self) -> None:
        raw = spead2.RawDescriptor()
        raw.id = -1
        assert raw.id == -1
        with pytest.raises(TypeError):
            raw.id = 2**63

    def test_format_code_is_one_character(self) -> None:
        raw = spead2.RawDescriptor()
        with pytest.raises(ValueError, match="multi-character"):
            raw.format = [("uu", 8)]


class TestLayout:
    def test_spead_64_40(self) -> None:
        payload = descriptor_packet(0x1000, b"nm", b"ds", [2, None], [("u", 8), ("i", 12)])
        # format entries are 1 + 3 bytes and shape entries 1 + 5 bytes in SPEAD-64-40
        assert b"u\x00\x00\x08i\x00\x00\x0c" in payload
        assert b"\x00\x00\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00" in payload
        [raw] = parse(payload)
        assert summary(raw) == (0x1000, b"nm", b"ds", [2, None], [("u", 8), ("i", 12)], b"")

    @pytest.mark.parametrize("heap_address_bits", [16, 24, 32, 48, 56])
    def test_other_flavours(self, heap_address_bits: int) -> None:
        payload = descriptor_packet(
            0x12, b"nm", b"ds", [300, None], [("f", 64), ("b", 1)], heap_address_bits=heap_address_bits
        )
        [raw] = parse(payload)
        assert summary(raw) == (0x12, b"nm", b"ds", [300, None], [("f", 64), ("b", 1)], b"")

    def test_widths_follow_the_packet_not_the_heap_flavour(self) -> None:
        payload = descriptor_packet(0x1000, b"nm", shape=[7], format=[("u", 8)], heap_address_bits=48)
        [raw] = parse_descriptors([payload], spead2.Flavour(4, 64, 40))
        assert raw.shape == [7]
        assert raw.format == [("u", 8)]

    @pytest.mark.parametrize("heap_address_bits", [40, 48])
    def test_pyspead_bug_compat_keeps_40_bit_layout(self, heap_address_bits: int) -> None:
        payload = descriptor_packet(
            0x10, b"nm", b"ds", [2, None], [("u", 8)], heap_address_bits=heap_address_bits, bug_compat=PYSPEAD
        )
        # 64-bit shape entries with bit 1 for a variable dimension, 1 + 3 byte format entries
        assert b"u\x00\x00\x08" in payload
        assert b"\x00" * 7 + b"\x02" + b"\x02" + b"\x00" * 7 in payload
        [raw] = parse(payload, bug_compat=PYSPEAD)
        assert raw.shape == [2, None]
        assert raw.format == [("u", 8)]

    def test_descriptor_widths_shape_value_has_seven_bytes(self) -> None:
        items = descriptor_items(
            0x10, b"nm", format=[("u", 8)], bug_compat=spead2.BUG_COMPAT_DESCRIPTOR_WIDTHS
        )
        items[-1] = (spead2.DESCRIPTOR_SHAPE_ID, b"\x00\x01" + bytes(5) + b"\x02")
        [raw] = parse(heap_packet(items), bug_compat=spead2.BUG_COMPAT_DESCRIPTOR_WIDTHS)
        assert raw.shape == [2**48 + 2]

    @pytest.mark.parametrize(
        ("bug_compat", "flag", "expected"),
        [
            (0, 0x01, None),
            (0, 0x03, None),
            (0, 0x02, 2),
            (0, 0x80, 2),
            (spead2.BUG_COMPAT_SHAPE_BIT_1, 0x02, None),
            (spead2.BUG_COMPAT_SHAPE_BIT_1, 0x03, None),
            (spead2.BUG_COMPAT_SHAPE_BIT_1, 0x01, 2),
        ],
    )
    def test_variable_dimension_flag(self, bug_compat: int, flag: int, expected: int | None) -> None:
        items = descriptor_items(0x10, b"nm", format=[("u", 8)])
        items[-1] = (spead2.DESCRIPTOR_SHAPE_ID, bytes([flag]) + b"\x00\x00\x00\x00\x02")
        [raw] = parse(heap_packet(items), bug_compat=bug_compat)
        assert raw.shape == [expected]

    def test_bug_compat_mismatch_misreads_widths(self) -> None:
        payload = descriptor_packet(0x10, b"nm", shape=[5], format=[("u", 8)], bug_compat=PYSPEAD)
        [raw] = parse(payload, bug_compat=0)
        assert raw.shape == [0]  # the 8-byte entry read as 6 bytes; the last 2 bytes are left over

    def test_partial_entries_are_ignored(self) -> None:
        items = descriptor_items(0x10, b"nm")
        items[-2] = (spead2.DESCRIPTOR_FORMAT_ID, b"u\x00\x00\x08i\x00")
        items[-1] = (spead2.DESCRIPTOR_SHAPE_ID, b"\x00\x00\x00\x00\x00\x03\x00\x00")
        [raw] = parse(heap_packet(items))
        assert raw.format == [("u", 8)]
        assert raw.shape == [3]

    def test_format_codes_are_latin1(self) -> None:
        items = descriptor_items(0x10, b"nm")
        items[-2] = (spead2.DESCRIPTOR_FORMAT_ID, b"\xe9\x00\x00\x08\x00\x00\x00\x00")
        [raw] = parse(heap_packet(items))
        assert raw.format == [("\xe9", 8), ("\x00", 0)]

    def test_numpy_header_clears_shape_and_format(self) -> None:
        payload = descriptor_packet(0x10, b"nm", shape=[2], format=[("u", 8)], dtype=HEADER)
        [raw] = parse(payload)
        assert (raw.shape, raw.format, raw.numpy_header) == ([], [], HEADER)

    def test_empty_numpy_header_keeps_shape_and_format(self) -> None:
        payload = descriptor_packet(0x10, b"nm", shape=[2], format=[("u", 8)], dtype=b"")
        [raw] = parse(payload)
        assert (raw.shape, raw.format, raw.numpy_header) == ([2], [("u", 8)], b"")


class TestItems:
    def test_missing_fields_have_defaults(self) -> None:
        [raw] = parse(heap_packet([(spead2.DESCRIPTOR_ID_ID, 0x1000)]))
        assert summary(raw) == (0x1000, b"", b"", [], [], b"")

    def test_pointer_order_does_not_matter(self) -> None:
        items = descriptor_items(0x10, b"nm", b"ds", [2], [("u", 8)])
        [raw] = parse(heap_packet(list(reversed(items))))
        assert summary(raw) == (0x10, b"nm", b"ds", [2], [("u", 8)], b"")

    def test_immediate_string_is_its_address_bytes(self) -> None:
        items = descriptor_items(0x10, b"", b"ds", [2], [("u", 8)])
        items[1] = (spead2.DESCRIPTOR_NAME_ID, 0x6E6D)
        [raw] = parse(heap_packet(items))
        assert raw.name == b"\x00\x00\x00nm"

    def test_immediate_shape_and_format_use_address_bytes(self) -> None:
        items = descriptor_items(0x10, b"nm", b"ds")
        items[3] = (spead2.DESCRIPTOR_FORMAT_ID, 0x7500000008)
        items[4] = (spead2.DESCRIPTOR_SHAPE_ID, 2)
        [raw] = parse(heap_packet(items))
        assert raw.format == [("u", 0)]  # 5 bytes: one 4-byte entry, one byte left over
        assert raw.shape == []  # 5 bytes: no complete 6-byte entry

    def test_duplicate_items_last_wins(self) -> None:
        items = [*descriptor_items(0x10, b"nm", format=[("u", 8)]), (spead2.DESCRIPTOR_NAME_ID, b"n2")]
        [raw] = parse(heap_packet(items))
        assert raw.name == b"n2"

    def test_items_at_the_same_address(self) -> None:
        # the earlier pointer gets no bytes: lengths run to the next pointer by address
        pointers = [
            pointer(1, 1, True),
            pointer(2, 4, True),
            pointer(3, 0, True),
            pointer(4, 4, True),
            pointer(spead2.DESCRIPTOR_ID_ID, 0x10, True),
            pointer(spead2.DESCRIPTOR_NAME_ID, 0, False),
            pointer(0x7777, 0, False),
            pointer(spead2.DESCRIPTOR_DESCRIPTION_ID, 2, False),
        ]
        [raw] = parse(packet_bytes(pointers, b"nmds"))
        assert (raw.name, raw.description) == (b"", b"ds")

    def test_null_pointer_ends_the_previous_item(self) -> None:
        pointers = [
            pointer(1, 1, True),
            pointer(2, 4, True),
            pointer(3, 0, True),
            pointer(4, 4, True),
            pointer(spead2.DESCRIPTOR_ID_ID, 0x10, True),
            pointer(spead2.DESCRIPTOR_NAME_ID, 0, False),
            pointer(spead2.NULL_ID, 1, False),
            pointer(spead2.DESCRIPTOR_DESCRIPTION_ID, 2, False),
        ]
        [raw] = parse(packet_bytes(pointers, b"nmds"))
        assert (raw.name, raw.description) == (b"n", b"ds")

    def test_item_beyond_the_payload_drops_the_descriptor(self) -> None:
        pointers = [
            pointer(1, 1, True),
            pointer(2, 4, True),
            pointer(3, 0, True),
            pointer(4, 4, True),
            pointer(spead2.DESCRIPTOR_ID_ID, 0x10, True),
            pointer(spead2.DESCRIPTOR_NAME_ID, 0, False),
            pointer(spead2.DESCRIPTOR_DESCRIPTION_ID, 5, False),
        ]
        assert parse(packet_bytes(pointers, b"nmds")) == []
        pointers[-1] = pointer(spead2.DESCRIPTOR_DESCRIPTION_ID, 4, False)  # at the end: empty
        [raw] = parse(packet_bytes(pointers, b"nmds"))
        assert (raw.name, raw.description) == (b"nmds", b"")

    def test_no_id(self, caplog: pytest.LogCaptureFixture) -> None:
        items = descriptor_items(0x10, b"nm")[1:]
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert parse(heap_packet(items)) == []
        assert "incomplete descriptor (no ID)" in caplog.messages

    def test_addressed_id_is_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        items = descriptor_items(0x10, b"nm")
        items[0] = (spead2.DESCRIPTOR_ID_ID, b"\x10\x00")
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert parse(heap_packet(items)) == []
        assert caplog.messages == [
            "Ignoring descriptor ID that is not an immediate",
            "incomplete descriptor (no ID)",
        ]

    def test_unrecognised_items_are_logged_in_heap_order(self, caplog: pytest.LogCaptureFixture) -> None:
        items = [*descriptor_items(0x10, b"nm", format=[("u", 8)]), (5, 7), (6, 0), (7, 9), (0x1234, b"xy")]
        with caplog.at_level(logging.INFO, logger="spead2"):
            [raw] = parse(heap_packet(items))
        assert raw.name == b"nm"
        # addressed items by address first, then immediates by value
        assert caplog.messages == [f"Unrecognised descriptor item ID {i:#x}" for i in (0x1234, 6, 5, 7)]

    def test_several_items_and_several_descriptors_per_item(self) -> None:
        a = descriptor_packet(0x10, b"a")
        b = descriptor_packet(0x11, b"b")
        assert names(parse(a + b, descriptor_packet(0x12, b"c"))) == [b"a", b"b", b"c"]

    def test_buffer_types(self) -> None:
        payload = descriptor_packet(0x10, b"a")
        from spead2._rawitem import RawItem

        buffers = [payload, bytearray(payload), memoryview(payload), RawItem.from_bytes(5, payload)]
        assert names(parse_descriptors(buffers, FLAVOUR)) == [b"a"] * 4


REJECTED = "packet rejected because "
CNT, OFFSET, LENGTH0 = pointer(1, 1, True), pointer(3, 0, True), pointer(4, 0, True)
GOOD = descriptor_packet(0x10)


class TestMalformed:
    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            (b"", None),
            (b"S\x04\x03\x05\x00", "too small (5 bytes)"),
            (b"R" + GOOD[1:], "magic or version did not match"),
            (b"S\x03" + GOOD[2:], "magic or version did not match"),
            (b"S\x04\x00\x05" + GOOD[4:], "flavour is invalid"),
            (b"S\x04\x08\x00" + GOOD[4:], "flavour is invalid"),
            (b"S\x04\x03\x04\x00\x00\x00\x01" + bytes(8), "flavour is not SPEAD-64-*"),
            (b"S\x04\x03\x05\x00\x00\x00\x40" + bytes(16), "the items overflow the packet"),
            (packet_bytes([CNT, LENGTH0], b""), "it does not have required items"),
            (packet_bytes([OFFSET, LENGTH0], b""), "it does not have required items"),
            (packet_bytes([CNT, OFFSET], b""), "it does not have required items"),
            (packet_bytes([pointer(1, 0, False), OFFSET, LENGTH0], b""), "it does not have required items"),
            (
                packet_bytes([CNT, OFFSET, pointer(4, 9, True)], b"abc"),
                "payload length overflows packet size (41 > 35)",
            ),
            (
                packet_bytes([CNT, pointer(2, 2, True), OFFSET, pointer(4, 3, True)], b"abc"),
                "payload would overflow given heap length",
            ),
        ],
    )
    def test_bad_packets_are_logged_and_skipped(
        self, payload: bytes, message: str | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert parse(payload) == []
        assert caplog.messages == ([] if message is None else [REJECTED + message])
        assert all(r.levelno == logging.INFO for r in caplog.records)

    def test_bad_packet_ends_the_item(self, caplog: pytest.LogCaptureFixture) -> None:
        good = descriptor_packet(0x10, b"a")
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert names(parse(good + b"garbage" + good)) == [b"a"]
        assert caplog.messages == ["packet rejected because magic or version did not match"]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert names(parse(good + b"S\x04\x03")) == [b"a"]
        assert caplog.messages == ["packet rejected because too small (3 bytes)"]

    def test_truncated_packet(self, caplog: pytest.LogCaptureFixture) -> None:
        good = descriptor_packet(0x10, b"name", b"description")
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert parse(good[:-3]) == []
        size = len(good)
        assert caplog.messages == [
            f"packet rejected because payload length overflows packet size ({size} > {size - 3})"
        ]

    def test_header_items_that_are_not_immediate_are_ignored(self) -> None:
        items = descriptor_items(0x10, b"nm", b"ds")
        pkt = heap_packet(items)
        # add an addressed HEAP_LENGTH pointer at address 1: it must not cut the name short
        n = int.from_bytes(pkt[6:8], "big")
        pkt = (
            pkt[:6]
            + (n + 1).to_bytes(2, "big")
            + pkt[8 : 8 + 8 * n]
            + pointer(2, 1, False)
            + pkt[8 + 8 * n :]
        )
        [raw] = parse(pkt)
        assert (raw.name, raw.description) == (b"nm", b"ds")

    def test_random_garbage_never_raises(self) -> None:
        import random

        rng = random.Random(1234)
        good = descriptor_packet(0x10, b"nm", b"ds", [2, None], [("u", 8)], dtype=HEADER)
        for _ in range(2000):
            data = bytearray(good)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data
            for bug_compat in (0, PYSPEAD):
                for raw in parse(bytes(data), bug_compat=bug_compat):
                    assert isinstance(raw, spead2.RawDescriptor)


class TestHeapAssembly:
    """A descriptor split over packets is assembled like an in-order stream with one live heap."""

    A = descriptor_items(0x10, b"aa", b"ds", [2], [("u", 8)])
    B = descriptor_items(0x11, b"bb", b"ds", [2], [("u", 8)])

    def split(
        self, items: list[tuple[int, int | bytes]], cnt: int = 1, at: int = 5, **kwargs: bool
    ) -> list[bytes]:
        return heap_packets(items, cnt=cnt, split_at=at, **kwargs)

    def test_two_packets(self) -> None:
        assert names(parse(b"".join(self.split(self.A)))) == [b"aa"]

    def test_first_packet_only(self) -> None:
        assert parse(self.split(self.A)[0]) == []

    def test_second_packet_first(self) -> None:
        a1, a2 = self.split(self.A)
        assert names(parse(a2 + a1 + a2)) == [b"aa"]  # a heap cannot start mid-way

    def test_duplicate_packet_is_out_of_order(self, caplog: pytest.LogCaptureFixture) -> None:
        a1, a2 = self.split(self.A)
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert names(parse(a1 + a1 + a2)) == [b"aa"]
        assert caplog.messages == [
            "packet rejected because it is out-of-order in the heap "
            "(you might need to set allow_out_of_order to false in the stream config)"
        ]
        assert caplog.records[0].levelno == logging.WARNING

    def test_gap_is_dropped_silently(self, caplog: pytest.LogCaptureFixture) -> None:
        a1, a2 = self.split(self.A)
        later = self.split(self.A, at=7)[1]
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert names(parse(a1 + later + a2)) == [b"aa"]
            assert parse(a1 + later) == []
        assert caplog.messages == []

    def test_inconsistent_heap_length(self, caplog: pytest.LogCaptureFixture) -> None:
        a1, _ = self.split(self.A)
        other = self.split([*self.A, (0x1234, b"xyz")])[1]
        with caplog.at_level(logging.INFO, logger="spead2"):
            assert parse(a1 + other) == []
        assert caplog.messages == ["packet rejected because its HEAP_LEN is inconsistent with the heap"]

    def test_another_heap_replaces_the_live_one(self) -> None:
        a1, a2 = self.split(self.A)
        b_start = self.split(self.A, cnt=2)[0]
        assert parse(a1 + b_start + a2) == []
        assert names(parse(a1 + b_start + self.split(self.A, cnt=2)[1])) == [b"aa"]

    def test_whole_heap_packet_replaces_the_live_one(self) -> None:
        a1, a2 = self.split(self.A)
        for cnt in (1, 2):
            assert names(parse(a1 + heap_packet(self.B, cnt=cnt) + a2)) == [b"bb"]

    def test_same_cnt_twice(self) -> None:
        b = heap_packet(self.B)
        assert names(parse(b + b)) == [b"bb", b"bb"]

    def test_unsized_heaps(self) -> None:
        unsized = heap_packets(self.A, heap_length=False)[0]
        assert names(parse(unsized)) == [b"aa"]
        assert names(parse(b"".join(self.split(self.A, heap_length=False)))) == [b"aa"]
        b2 = heap_packets(self.B, cnt=2, heap_length=False)[0]
        assert names(parse(unsized + b2)) == [b"aa", b"bb"]
        assert names(parse(unsized + heap_packet(self.B, cnt=2))) == [b"aa", b"bb"]

    def test_unsized_heap_learns_its_length(self) -> None:
        first = self.split(self.A, heap_length=False)[0]
        assert names(parse(first + self.split(self.A)[1])) == [b"aa"]

    def test_stream_stop(self) -> None:
        stop = (spead2.STREAM_CTRL_ID, spead2.CTRL_STREAM_STOP)
        with_stop = heap_packet([*self.A, stop])
        assert parse(with_stop) == []
        assert parse(with_stop + heap_packet(self.B)) == []
        unsized = heap_packets(self.A, heap_length=False)[0]
        assert names(parse(unsized + heap_packet([*self.B, stop], cnt=2))) == [b"aa"]
        # a stop in a heap of unknown length ends the stream, which finishes that heap
        assert names(parse(heap_packets([*self.A, stop], heap_length=False)[0] + heap_packet(self.B))) == [
            b"aa"
        ]

    @pytest.mark.parametrize(
        "value", [spead2.CTRL_STREAM_START, spead2.CTRL_DESCRIPTOR_REISSUE, spead2.CTRL_DESCRIPTOR_UPDATE]
    )
    def test_other_stream_controls(self, value: int) -> None:
        assert names(parse(heap_packet([*self.A, (spead2.STREAM_CTRL_ID, value)]))) == [b"aa"]


def _items_by_address(payload: bytes, pointers: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    ordered = sorted(pointers, key=lambda p: p[1])
    ends = [address for _, address in ordered[1:]] + [len(payload)]
    return [(item_id, payload[address:end]) for (item_id, address), end in zip(ordered, ends, strict=True)]


@pytest.mark.parametrize(
    ("scenario", "form"), [p for p in vectors.heap_params("heap") if p.values[1] in ("bin", None)]
)
def test_vectors_descriptors(scenario: vectors.Scenario, form: str) -> None:
    """parse_descriptors on the DESCRIPTOR_ID items of the vectors' .bin heaps gives the
    reference's raw_descriptors (heaps that the simple .bin reader cannot isolate are skipped)."""
    expected_heaps = [h for h in scenario.expected_heaps(form) if h["kind"] == "heap"]
    counts = [h["cnt"] for h in expected_heaps]
    checked = 0
    for expected in expected_heaps:
        if counts.count(expected["cnt"]) != 1:
            continue
        heaps = list(vectors._bin_heaps(scenario.file("bin"), expected["cnt"]))
        if not heaps:
            continue
        payload, pointers = heaps[0]
        descriptor_payloads = [
            data for item_id, data in _items_by_address(payload, pointers) if item_id == spead2.DESCRIPTOR_ID
        ]
        flavour = vectors.flavour_from_json(expected["flavour"])
        actual = [
            vectors.encode_raw_descriptor(raw) for raw in parse_descriptors(descriptor_payloads, flavour)
        ]
        assert actual == expected["raw_descriptors"], f"heap cnt={expected['cnt']}"
        checked += 1
    if not checked:
        pytest.skip("no heap of this scenario can be isolated from the .bin")
