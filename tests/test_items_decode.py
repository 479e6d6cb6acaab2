"""Item.set_from_raw: turning the bytes of a received item into a value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fakeheap import immediate, raw

import spead2
from spead2._rawitem import RawItem

Item = spead2.Item
NATIVE = "<" if np.little_endian else ">"


def decode(item: spead2.Item, raw_item: RawItem, new_order: str = "=") -> Any:
    item.set_from_raw(raw_item, new_order=new_order)
    return item.value


def numpy_item(dtype: Any, shape: tuple[int | None, ...] = (2,), order: str = "C") -> spead2.Item:
    return Item(0x1000, "a", "", shape, dtype, order=order)


def legacy_item(fmt: list[tuple[str, int]], shape: tuple[int | None, ...] = (2,)) -> spead2.Item:
    return Item(0x1000, "a", "", shape, format=fmt)


def same(actual: Any, expected: Any) -> None:
    """Equal values of exactly the same type (and dtype, for numpy values)."""
    assert type(actual) is type(expected)
    if isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype
        assert actual.shape == expected.shape
        if expected.dtype.hasobject:
            assert actual.tolist() == expected.tolist()
        else:
            assert np.asarray(actual).tobytes() == np.asarray(expected).tobytes()
    else:
        assert actual == expected


class TestNumpy:
    def test_exact(self) -> None:
        same(decode(numpy_item("<u2"), raw(1, b"\1\0\2\0")), np.array([1, 2], "<u2"))

    def test_extra_bytes_are_ignored(self) -> None:
        same(decode(numpy_item("<u2"), raw(1, b"\1\0\2\0\3\0\4")), np.array([1, 2], "<u2"))

    def test_too_few_bytes(self) -> None:
        item = numpy_item("<u2")
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(1 < 2\)$"):
            item.set_from_raw(raw(1, b"\1\0\2"))
        assert (item.version, item.value) == (1, None)

    def test_version(self) -> None:
        item = numpy_item("<u2")
        item.set_from_raw(raw(1, b"\1\0\2\0"))
        item.set_from_raw(raw(1, b"\1\0\2\0"))
        assert item.version == 3

    @pytest.mark.parametrize(
        ("new_order", "dtype"),
        [
            ("=", NATIVE + "u2"),
            ("|", ">u2"),
            (">", ">u2"),
            ("<", "<u2"),
            ("S", "<u2"),
            ("little", "<u2"),
            ("==", NATIVE + "u2"),
        ],
    )
    def test_byte_order(self, new_order: str, dtype: str) -> None:
        value = decode(numpy_item(">u2"), raw(1, b"\0\1\0\2"), new_order)
        assert value.dtype == np.dtype(dtype)
        assert value.tolist() == [1, 2]

    def test_invalid_byte_order(self) -> None:
        item = numpy_item("<u2")
        with pytest.raises(ValueError, match=r"byteorder not recognized \(got 'x'\)"):
            item.set_from_raw(raw(1, b"\1\0\2\0"), new_order="x")
        with pytest.raises(TypeError):
            item.set_from_raw(raw(1, b"\1\0\2\0"), new_order=None)  # type: ignore[arg-type]
        assert item.version == 1
        # the size check comes first
        with pytest.raises(ValueError, match="too few elements"):
            item.set_from_raw(raw(1, b"\1"), new_order="x")

    def test_fortran_order(self) -> None:
        value = decode(numpy_item("<u2", (2, 3), "F"), raw(1, bytes(range(12))))
        assert value.flags.f_contiguous and not value.flags.c_contiguous
        assert value.tolist() == [[256, 1284, 2312], [770, 1798, 2826]]
        swapped = decode(numpy_item(">u2", (2, 3), "F"), raw(1, bytes(range(12))))
        assert swapped.flags.f_contiguous and swapped.dtype == np.dtype(NATIVE + "u2")

    def test_records(self) -> None:
        dtype = np.dtype([("x", "u1"), ("y", ">u2")])
        value = decode(numpy_item(dtype), raw(1, bytes(range(6))))
        assert value.dtype == np.dtype([("x", "u1"), ("y", NATIVE + "u2")])
        assert value.tolist() == [(0, 258), (3, 1029)]
        assert decode(numpy_item(dtype), raw(1, bytes(range(6))), "|").dtype == dtype

    @pytest.mark.parametrize("stored", [">u2", "<u2"])
    def test_single_field_record_converted(self, stored: str) -> None:
        value = decode(numpy_item([("y", stored)]), raw(1, b"\1\2\3\4"))
        assert value.dtype == np.dtype([("y", NATIVE + "u2")])
        assert value["y"].tolist() == np.frombuffer(b"\1\2\3\4", stored).tolist()
        big = decode(numpy_item([("y", stored)]), raw(1, b"\1\2\3\4"), ">")
        assert big.dtype == np.dtype([("y", ">u2")])

    def test_record_with_subarray_field(self) -> None:
        value = decode(numpy_item([("y", ">u2", (2,))]), raw(1, bytes(range(8))))
        assert value["y"].tolist() == [[1, 515], [1029, 1543]]

    def test_subarray_dtype_is_numpys_error(self) -> None:
        with pytest.raises(ValueError, match="Changing the dtype to a subarray type is only supported"):
            decode(numpy_item((">u2", (2,))), raw(1, bytes(range(8))))

    @pytest.mark.parametrize(
        ("dtype", "data", "expected"),
        [
            ("|b1", b"\0\1\2", np.frombuffer(b"\0\1\2", "|b1")),  # raw bytes kept, not normalised
            ("|S3", b"abcde\0", np.array([b"abc", b"de"], "S3")),
            (">U2", "abcd".encode("utf-32-be"), np.array(["ab", "cd"], NATIVE + "U2")),
            ("<c16", bytes(16), np.zeros(1, "<c16")),
            ("<M8[s]", bytes(8), np.zeros(1, "<M8[s]")),
            ("|V3", bytes(range(6)), np.frombuffer(bytes(range(6)), "V3")),
            ("<f2", bytes(4), np.zeros(2, "<f2")),
        ],
    )
    def test_dtypes(self, dtype: str, data: bytes, expected: np.ndarray) -> None:
        shape = (len(data) // np.dtype(dtype).itemsize,)
        same(decode(numpy_item(dtype, shape), raw(1, data)), expected)

    def test_padded_record(self) -> None:
        dtype = np.dtype({"names": ["a"], "formats": ["<u2"], "offsets": [1], "itemsize": 4})
        assert decode(numpy_item(dtype, (1,)), raw(1, bytes(range(4))))["a"].tolist() == [513]

    @pytest.mark.parametrize(
        ("dtype", "expected"),
        [
            ("<u2", np.uint16(1)),
            (">i4", np.int32(0x01000200)),
            ("|S4", np.bytes_(b"\1\0\2")),
            ("|V3", np.void(b"\1\0\2")),
        ],
    )
    def test_scalars(self, dtype: str, expected: np.generic) -> None:
        same(decode(numpy_item(dtype, ()), raw(1, b"\1\0\2\0\5")), expected)

    def test_record_scalar_keeps_its_byte_order_with_bar(self) -> None:
        dtype = np.dtype([("x", "u1"), ("y", ">u2")])
        value = decode(numpy_item(dtype, ()), raw(1, b"\0\1\2"), "|")
        assert type(value) is np.void
        assert value.dtype == dtype
        assert value.item() == (0, 258)

    def test_immediates_are_right_aligned(self) -> None:
        same(decode(numpy_item(">u2", ()), immediate(1, 0x0102030405)), np.uint16(0x0405))
        same(decode(numpy_item("|u1", ()), immediate(1, 0x0102030405)), np.uint8(5))
        same(decode(numpy_item("|S4", ()), immediate(1, 0x0102030405)), np.bytes_(b"\2\3\4\5"))
        same(decode(numpy_item("<u2"), immediate(1, 0x0102030405)), np.array([0x0302, 0x0504], NATIVE + "u2"))
        same(decode(numpy_item("|u1", (5,)), immediate(1, 0x0102030405)), np.arange(1, 6, dtype=np.uint8))
        same(
            decode(numpy_item("|u1", (6,)), immediate(1, 0x010203040506, 48)), np.arange(1, 7, dtype=np.uint8)
        )

    def test_immediate_too_small(self) -> None:
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(5 < 6\)$"):
            decode(numpy_item("|u1", (6,)), immediate(1, 0x0102030405))

    def test_zero_size(self) -> None:
        same(decode(numpy_item("<u2", (0,)), raw(1, b"\1\2")), np.zeros(0, "<u2"))
        same(decode(numpy_item("<u2", (0, 3)), raw(1, b"ab")), np.zeros((0, 3), "<u2"))

    def test_zero_size_immediate_uses_the_whole_immediate(self) -> None:
        # like the reference: raw[-0:] is all 5 bytes, which cannot be viewed as <u2
        with pytest.raises(ValueError, match="When changing to a larger dtype"):
            decode(numpy_item("<u2", (0,)), immediate(1, 0))
        with pytest.raises(ValueError, match=r"cannot reshape array of size 5 into shape \(0,\)"):
            decode(legacy_item([("u", 8)], (0,)), immediate(1, 0))


class TestZeroCopy:
    def test_views_on_the_item_memory(self) -> None:
        data = bytearray(b"\1\0\2\0\3\0")
        raw_item = RawItem.from_bytes(1, data)
        for item in (
            numpy_item("<u2", (3,)),
            legacy_item([("u", 8)], (6,)),
            legacy_item([("u", 8), ("u", 8)], (3,)),
        ):
            value = decode(item, raw_item, "|")
            assert np.shares_memory(value, raw_item)
            assert value.flags.writeable
            base = value
            while isinstance(base, np.ndarray):
                base = base.base
            assert isinstance(base, memoryview) and base.obj is data

    def test_writes_go_to_the_heap(self) -> None:
        data = bytearray(b"\1\0\2\0")
        value = decode(numpy_item("<u2"), RawItem.from_bytes(1, data), "<")
        value[0] = 7
        assert data == b"\7\0\2\0"

    def test_immediate_views(self) -> None:
        raw_item = immediate(1, 0x0102)
        value = decode(numpy_item("|u1"), raw_item)
        assert np.shares_memory(value, raw_item)

    def test_byte_swapping_copies(self) -> None:
        raw_item = raw(1, b"\0\1\0\2")
        value = decode(numpy_item(">u2"), raw_item, "<")
        assert not np.shares_memory(value, raw_item)
        assert value.flags.writeable


class TestLegacyFast:
    @pytest.mark.parametrize(
        ("fmt", "data", "big"),
        [
            (("u", 8), b"\1\2", "u1"),
            (("u", 16), b"\1\2\3\4", ">u2"),
            (("u", 32), b"\1\2\3\4\5\6\7\x08", ">u4"),
            (("u", 64), bytes(range(16)), ">u8"),
            (("i", 16), b"\xff\xfe\3\4", ">i2"),
            (("f", 32), b"\x3f\xc0\0\0\0\0\0\0", ">f4"),
            (("f", 64), bytes(16), ">f8"),
            (("b", 8), b"\0\2", "?"),
        ],
    )
    def test_whole_byte_types(self, fmt: tuple[str, int], data: bytes, big: str) -> None:
        expected = np.frombuffer(data, big)
        same(decode(legacy_item([fmt]), raw(1, data), "|"), expected)
        same(decode(legacy_item([fmt]), raw(1, data)), expected.astype(np.dtype(big).newbyteorder("=")))

    def test_scalars_are_numpy_scalars(self) -> None:
        same(decode(legacy_item([("u", 8)], ()), immediate(1, 0x0102030405)), np.uint8(5))
        same(decode(legacy_item([("u", 32)], ()), immediate(1, 0x0102030405)), np.uint32(0x02030405))
        same(decode(legacy_item([("u", 16)], ()), raw(1, b"\1\2\3")), np.uint16(258))
        same(decode(legacy_item([("b", 8)], ()), raw(1, b"\1")), np.True_)
        same(decode(legacy_item([("i", 64)], ()), raw(1, b"\xff" * 8)), np.int64(-1))

    def test_records(self) -> None:
        value = decode(legacy_item([("u", 8), ("u", 16)]), raw(1, bytes(range(6))))
        assert value.dtype == np.dtype([("f0", "u1"), ("f1", NATIVE + "u2")])
        assert value.tolist() == [(0, 258), (3, 1029)]
        kept = decode(legacy_item([("u", 8), ("u", 16)]), raw(1, bytes(range(6))), "|")
        assert kept.dtype == np.dtype([("f0", "u1"), ("f1", ">u2")])
        scalar = decode(legacy_item([("u", 8), ("i", 16), ("f", 32)], ()), raw(1, bytes(range(7))))
        assert type(scalar) is np.void and scalar.item()[:2] == (0, 258)
        chars = decode(legacy_item([("c", 8), ("u", 8)]), raw(1, b"a\1b\2"))
        assert chars.dtype == np.dtype([("f0", "S1"), ("f1", "u1")])
        assert chars.tolist() == [(b"a", 1), (b"b", 2)]

    def test_variable_dimensions(self) -> None:
        same(
            decode(legacy_item([("u", 8)], (None, 2)), raw(1, bytes(range(5)))),
            np.arange(4, dtype=np.uint8).reshape(2, 2),
        )
        same(
            decode(legacy_item([("u", 8)], (2, None)), raw(1, bytes(range(5)))),
            np.arange(4, dtype=np.uint8).reshape(2, 2),
        )
        same(decode(legacy_item([("u", 8)], (0, None)), raw(1, bytes(range(5)))), np.zeros((0, 0), np.uint8))
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(2 < 3\)$"):
            decode(legacy_item([("u", 8)], (3,)), raw(1, b"\1\2"))


class TestStrings:
    @pytest.mark.parametrize("shape", [(3,), (None,)])
    def test_c8_1d_is_str(self, shape: tuple[int | None]) -> None:
        same(decode(legacy_item([("c", 8)], shape), raw(1, b"abc")), "abc")

    def test_nuls_are_dropped(self) -> None:
        same(decode(legacy_item([("c", 8)], (None,)), raw(1, b"ab\0c\0")), "abc")

    def test_non_ascii(self) -> None:
        item = legacy_item([("c", 8)], (None,))
        with pytest.raises(UnicodeDecodeError, match="'ascii' codec can't decode byte 0xc3 in position 1"):
            item.set_from_raw(raw(1, b"a\xc3\xa9"))
        assert item.version == 1

    def test_byte_order_is_checked_first(self) -> None:
        with pytest.raises(ValueError, match="byteorder not recognized"):
            decode(legacy_item([("c", 8)], (None,)), raw(1, b"\xff"), "x")

    def test_other_shapes_stay_bytes(self) -> None:
        same(
            decode(legacy_item([("c", 8)], (2, 2)), raw(1, b"abcd")),
            np.array([[b"a", b"b"], [b"c", b"d"]], "S1"),
        )
        same(decode(legacy_item([("c", 8)], ()), raw(1, b"a")), np.bytes_(b"a"))
        same(decode(numpy_item("S1", (3,)), raw(1, b"abc")), np.array([b"a", b"b", b"c"], "S1"))

    def test_only_a_list_of_tuples_format_is_a_string(self) -> None:
        same(
            decode(Item(1, "a", "", [None], format=[["c", 8]]), raw(1, b"abc")),
            np.array([b"a", b"b", b"c"], "S1"),
        )
        same(
            decode(Item(1, "a", "", [None], format=(("c", 8),)), raw(1, b"abc")),
            np.array([b"a", b"b", b"c"], "S1"),
        )


def objects(values: list[Any], shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.empty(len(values), object)
    array[:] = values
    return array if shape is None else array.reshape(shape)


class TestLegacySlow:
    @pytest.mark.parametrize(
        ("fmt", "shape", "data", "expected"),
        [
            (("u", 24), (2,), b"\1\2\3\4\5\6", [0x010203, 0x040506]),
            (("i", 24), (2,), b"\xff\xff\xfe\4\5\6", [-2, 0x040506]),
            (("u", 4), (3,), b"\x12\x34", [1, 2, 3]),
            (("i", 4), (3,), b"\x1f\x84", [1, -1, -8]),
            (("u", 3), (None,), b"\x12\x34", [0, 4, 4, 3, 2]),
            (("i", 12), (None,), b"\1\2\3\4", [16, 515]),
            (("u", 1), (None,), b"\xff\0", [1] * 8 + [0] * 8),
            (("u", 4), (None,), b"\x12\x34\x56", [1, 2, 3, 4, 5, 6]),
            (("b", 1), (5,), b"\xa8", [True, False, True, False, True]),
            (("b", 2), (2,), b"\x90", [True, True]),
            (("b", 16), (2,), b"\0\1\0\0", [True, False]),
            (("u", 63), (1,), b"\xff" * 8, [2**63 - 1]),
            (("i", 63), (1,), b"\xff" * 8, [-1]),
            (("u", 65), (1,), b"\xff" * 9, [2**65 - 1]),
            (("i", 65), (1,), b"\xff" * 9, [-1]),
            (("i", 70), (1,), b"\x80" + bytes(8), [-(2**69)]),
            (("u", 128), (1,), b"\xff" * 16, [2**128 - 1]),
        ],
    )
    def test_single_field(
        self, fmt: tuple[str, int], shape: tuple[int | None], data: bytes, expected: list[Any]
    ) -> None:
        value = decode(legacy_item([fmt], shape), raw(1, data))
        same(value, objects(expected))
        assert all(type(v) is type(e) for v, e in zip(value.tolist(), expected, strict=True))
        assert value.base is None and value.flags.writeable

    def test_byte_order_is_ignored(self) -> None:
        same(decode(legacy_item([("u", 4)], (None,)), raw(1, b"\x12"), "x"), objects([1, 2]))

    @pytest.mark.parametrize(
        ("fmt", "data", "expected"),
        [
            ([("u", 24)], 0x0102030405, 0x030405),
            ([("i", 24)], 0x01FFFFFE, -2),
            ([("u", 40)], 0x0102030405, 0x0102030405),
            ([("u", 12)], 0x0102030405, 0x040),  # the last 2 bytes, read from the top
            ([("u", 3)], 0x0102030405, 0),
            ([("u", 24)], b"\1\2\3\4", 0x010203),
            ([("u", 48)], b"\1\2\3\4\5\6", 0x010203040506),
            ([("u", 12)], b"\xab\xcd", 0xABC),
            ([("b", 1)], b"\x12", False),
        ],
    )
    def test_scalars_are_python_values(
        self, fmt: list[tuple[str, int]], data: int | bytes, expected: Any
    ) -> None:
        raw_item = immediate(1, data) if isinstance(data, int) else raw(1, data)
        same(decode(legacy_item(fmt, ()), raw_item), expected)

    def test_immediate_arrays(self) -> None:
        same(decode(legacy_item([("u", 3)], (2,)), immediate(1, 0x0102030405)), objects([0, 1]))
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(1 < 2\)$"):
            decode(legacy_item([("u", 24)], (2,)), immediate(1, 0x0102030405))

    def test_structs(self) -> None:
        value = decode(legacy_item([("u", 4), ("u", 4)]), raw(1, b"\x12\x34"))
        assert value.dtype == np.dtype([("f0", "O"), ("f1", "O")])
        assert value.tolist() == [(1, 2), (3, 4)]
        mixed = decode(legacy_item([("c", 8), ("u", 1)]), raw(1, b"a\xb1\0"))
        assert mixed.dtype == np.dtype([("f0", "S1"), ("f1", "O")])
        assert mixed.tolist() == [(b"a", 1), (b"b", 0)]
        # numpy-typed fields stay big-endian whatever new_order says
        floats = decode(
            legacy_item([("f", 64), ("u", 8), ("u", 1)], (1,)), raw(1, b"\x3f\xf8" + bytes(6) + b"\5\x80")
        )
        assert floats.dtype == np.dtype([("f0", ">f8"), ("f1", "u1"), ("f2", "O")])
        assert floats.tolist() == [(1.5, 5, 1)]
        flags = decode(legacy_item([("b", 8), ("u", 1)], (1,)), raw(1, b"\2\x80"))
        assert flags.tolist() == [(True, 1)]
        odd = decode(
            legacy_item([("u", 4), ("i", 12), ("b", 1), ("u", 15)], (1,)), raw(1, b"\xf8\x00\xff\xff")
        )
        assert odd.tolist() == [(15, -2048, True, 32767)]

    def test_struct_scalar_is_a_record(self) -> None:
        value = decode(legacy_item([("u", 3), ("i", 5)], ()), raw(1, b"\xb7"))
        assert type(value) is np.void
        assert value.item() == (5, -9)
        float_scalar = decode(legacy_item([("f", 32), ("u", 4)], ()), raw(1, b"\x3f\xc0\0\0\x50"))
        assert float_scalar.item() == (1.5, 5)

    def test_zero_elements_stop_at_the_first_empty_dimension(self) -> None:
        # the reference builds nested lists: np.array([]) has shape (0,) whatever follows
        same(decode(legacy_item([("u", 3)], (0,)), raw(1, b"\1")), objects([]))
        same(decode(legacy_item([("u", 3)], (0, None)), raw(1, b"\1")), objects([]))
        same(decode(legacy_item([("i", 48)], (0, None)), raw(1, b"\1")), objects([]))
        same(decode(legacy_item([("u", 3)], (3, 0)), raw(1, b"\1")), objects([]).reshape(3, 0))
        same(decode(legacy_item([("u", 3)], (0,)), immediate(1, 0)), objects([]))
        record = decode(legacy_item([("i", 7), ("u", 24)], (None, 3)), raw(1, b"\1"))
        assert (record.shape, record.dtype) == ((0,), np.dtype([("f0", "O"), ("f1", "O")]))

    def test_too_few(self) -> None:
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(2 < 4\)$"):
            decode(legacy_item([("u", 3)], (4,)), raw(1, b"\xff"))
        with pytest.raises(ValueError, match=r"^Item a has too few elements for shape \(0 < 1\)$"):
            decode(legacy_item([("u", 16777215)], ()), raw(1, b"\xff" * 8))
