"""spead2.Item: construction, the value property and versions, and the send-side to_buffer."""

from __future__ import annotations

import numpy as np
import pytest

import spead2

Item = spead2.Item


def buffer_of(*args: object, **kwargs: object) -> tuple[str, tuple[int, ...], bytes]:
    buffer = Item(*args, **kwargs).to_buffer()
    view = memoryview(buffer)
    return type(buffer).__name__, view.shape or (), view.tobytes()


class TestValue:
    def test_initial_version(self) -> None:
        assert Item(1, "a", "b", [2], np.uint8).version == 1
        item = Item(1, "a", "b", [2], np.uint8, value=[1, 2])
        assert (item.version, item.value) == (1, [1, 2])

    def test_value_is_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            Item(1, "a", "b", [2], None, "C", [("u", 8)], [1, 2])
        with pytest.raises(TypeError):
            Item(1, "a", "b", [2], np.uint8, foo=1)

    def test_assignment_bumps_the_version(self) -> None:
        item = Item(1, "a", "b", [2], np.uint8, value=[1, 2])
        item.value = [3, 4]
        item.value = [3, 4]
        assert item.version == 3

    def test_assignment_is_not_validated(self) -> None:
        item = Item(1, "a", "b", [2], np.uint8)
        item.value = ["x", "y", "z"]
        assert item.value == ["x", "y", "z"]

    def test_none_is_rejected(self) -> None:
        item = Item(1, "a", "b", [2], np.uint8, value=[1, 2])
        with pytest.raises(ValueError, match=r"^Item value cannot be set to None$"):
            item.value = None
        assert (item.version, item.value) == (1, [1, 2])

    def test_version_is_a_plain_attribute(self) -> None:
        item = Item(1, "a", "b", [2], np.uint8)
        item.version = 10
        item.value = [1, 2]
        assert item.version == 11

    def test_module(self) -> None:
        assert Item.__module__ == "spead2"
        assert isinstance(Item(1, "a", "b", [2], np.uint8), spead2.Descriptor)


class TestToBuffer:
    def test_none(self) -> None:
        with pytest.raises(ValueError, match=r"^Cannot send a value of None$"):
            Item(1, "a", "b", [], format=[("u", 32)]).to_buffer()

    def test_numpy_value_is_used_as_is(self) -> None:
        value = np.arange(4, dtype="<u2")
        assert Item(1, "a", "b", [4], "<u2", value=value).to_buffer() is value

    def test_conversions(self) -> None:
        value = np.arange(4, dtype="<u2")
        assert buffer_of(1, "a", "b", [4], ">u2", value=value) == ("ndarray", (4,), b"\0\0\0\1\0\2\0\3")
        strided = np.arange(4, dtype=np.uint8)[::2]
        assert buffer_of(1, "a", "b", [2], np.uint8, value=strided) == ("ndarray", (2,), b"\0\2")
        assert buffer_of(1, "a", "b", [2], np.uint8, value=[1.5, 2.7]) == ("ndarray", (2,), b"\1\2")

    def test_scalars(self) -> None:
        assert buffer_of(1, "a", "b", [], np.uint32, value=5) == ("ndarray", (), b"\5\0\0\0")
        assert buffer_of(1, "a", "b", [], format=[("u", 32)], value=5) == ("ndarray", (), b"\0\0\0\5")

    def test_legacy_fast_formats_are_big_endian(self) -> None:
        assert buffer_of(1, "a", "b", [2], format=[("i", 16)], value=[-5, 6]) == (
            "ndarray",
            (2,),
            b"\xff\xfb\0\6",
        )
        assert buffer_of(1, "a", "b", [1], format=[("f", 32)], value=[1.5]) == (
            "ndarray",
            (1,),
            b"\x3f\xc0\0\0",
        )
        assert buffer_of(1, "a", "b", [2], format=[("b", 8)], value=[True, False]) == (
            "ndarray",
            (2,),
            b"\1\0",
        )
        assert (
            buffer_of(1, "a", "b", [2], format=[("u", 8), ("u", 16)], value=[(1, 2), (3, 4)])[2]
            == b"\1\0\2\3\0\4"
        )

    def test_fortran_order_buffer_is_in_wire_order(self) -> None:
        value = [[1, 2], [3, 4]]
        assert buffer_of(1, "a", "b", [2, 2], np.uint8, order="F", value=value)[2] == b"\1\3\2\4"
        fortran = np.asfortranarray(value, dtype=np.uint8)
        assert buffer_of(1, "a", "b", [2, 2], np.uint8, value=fortran)[2] == b"\1\2\3\4"

    def test_strings_are_split_for_1d_items(self) -> None:
        assert buffer_of(1, "a", "b", [None], format=[("c", 8)], value="hi") == ("ndarray", (2,), b"hi")
        assert buffer_of(1, "a", "b", [None], format=[("c", 8)], value=b"hi") == ("ndarray", (2,), b"hi")
        assert buffer_of(1, "a", "b", [3], "S1", value=b"abc") == ("ndarray", (3,), b"abc")
        assert buffer_of(1, "a", "b", [], "S3", value="abc")[2] == b"abc"
        with pytest.raises(ValueError, match=r"^Value has shape \(3,\), expected \(4,\)$"):
            Item(1, "a", "b", [4], format=[("c", 8)], value="abc").to_buffer()
        with pytest.raises(ValueError, match=r"^Value has shape \(\), expected \(1, 3\)$"):
            Item(1, "a", "b", [1, 3], format=[("c", 8)], value="abc").to_buffer()
        with pytest.raises(UnicodeEncodeError):
            Item(1, "a", "b", [None], format=[("c", 8)], value="ab\xe9").to_buffer()
        with pytest.raises(ValueError, match="invalid literal for int"):
            Item(1, "a", "b", [None], format=[("u", 8)], value=b"abc").to_buffer()

    def test_shape_check(self) -> None:
        with pytest.raises(ValueError, match=r"^Value has shape \(3,\), expected \(2,\)$"):
            Item(1, "a", "b", [2], np.uint8, value=[1, 2, 3]).to_buffer()
        with pytest.raises(ValueError, match=r"^Value has shape \(1, 3\), expected \(None, 2\)$"):
            Item(1, "a", "b", [None, 2], format=[("u", 8)], value=[[1, 2, 3]]).to_buffer()
        assert buffer_of(1, "a", "b", [None], format=[("u", 16)], value=(1, 2, 3))[1] == (3,)

    def test_numpy_conversion_errors(self) -> None:
        with pytest.raises(OverflowError):
            Item(1, "a", "b", [2], np.uint8, value=[256, 2]).to_buffer()
        with pytest.raises(ValueError, match="invalid literal for int"):
            Item(1, "a", "b", [2], np.uint8, value=["x", "y"]).to_buffer()

    @pytest.mark.parametrize(
        ("shape", "fmt", "value", "expected"),
        [
            ([3], [("u", 3)], [1, 2, 7], b"\x2b\x80"),
            ([3], [("i", 3)], [-1, 2, -4], b"\xea\x00"),
            ([3], [("b", 1)], [True, False, 5], b"\xa0"),
            ([2], [("u", 24)], [1, 0x123456], b"\0\0\1\x12\x34\x56"),
            ([2], [("u", 4), ("u", 4)], [(1, 2), (3, 4)], b"\x12\x34"),
            ([2, 2], [("u", 4)], [[1, 2], [3, 4]], b"\x12\x34"),
            ([], [("u", 4)], 7, b"\x70"),
            ([1], [("u", 4)], [1.5], b"\x10"),
            ([1], [("u", 65)], [2**64], b"\x80" + bytes(8)),
            ([2], [("c", 8), ("u", 1)], [(b"a", 1), ("b", 0)], b"a\xb1\x00"),
            ([1], [("f", 32), ("u", 8), ("u", 1)], [(1.5, 2, 1)], b"\x3f\xc0\0\0\2\x80"),
            ([2], [("u", 64), ("u", 1)], [(2**64 - 1, 1), (0, 0)], b"\xff" * 8 + b"\x80" + bytes(8)),
            ([0], [("u", 3)], [], b""),
        ],
    )
    def test_bit_packed(
        self, shape: list[int], fmt: list[tuple[str, int]], value: object, expected: bytes
    ) -> None:
        assert buffer_of(1, "a", "b", shape, format=fmt, value=value) == (
            "bytearray",
            (len(expected),),
            expected,
        )

    @pytest.mark.parametrize(
        ("fmt", "value", "message"),
        [
            ([("u", 3)], [8, 1], "8 is out of range for u3"),
            ([("u", 3)], [-1, 1], "-1 is out of range for u3"),
            ([("i", 3)], [-5, 1], "-5 is out of range for i3"),
            ([("i", 3)], [4, 1], "4 is out of range for i3"),
        ],
    )
    def test_bit_packed_range(self, fmt: list[tuple[str, int]], value: object, message: str) -> None:
        with pytest.raises(ValueError, match=f"^{message}$"):
            Item(1, "a", "b", [2], format=fmt, value=value).to_buffer()

    def test_bit_packed_struct_needs_every_field(self) -> None:
        with pytest.raises(ValueError, match="could not assign tuple of length 1 to structure with 2 fields"):
            Item(1, "a", "b", [1], format=[("u", 3), ("u", 5)], value=[(1,)]).to_buffer()
