"""spead2.Descriptor: validation, properties, from_raw (numpy headers, legacy formats), to_raw."""

from __future__ import annotations

import numpy as np
import pytest
from fakeheap import numpy_header, raw_descriptor

import spead2

Descriptor = spead2.Descriptor
FLAVOUR = spead2.Flavour()
SWAP = spead2.Flavour(4, 64, 40, spead2.BUG_COMPAT_SWAP_ENDIAN)


class TestConstruction:
    def test_numpy(self) -> None:
        d = Descriptor(0x1000, "name", "desc", [2, 3], "<u2")
        assert (d.id, d.name, d.description, d.shape, d.order, d.format) == (
            0x1000,
            "name",
            "desc",
            (2, 3),
            "C",
            None,
        )
        assert d.dtype == np.dtype("<u2")
        assert isinstance(d.dtype, np.dtype)

    def test_format(self) -> None:
        fmt = [("u", 8), ("i", 12)]
        d = Descriptor(1, "a", "b", (None, 3), format=fmt)
        assert d.format is fmt  # kept as given
        assert d.dtype is None
        assert d.shape == (None, 3)

    def test_shape_is_a_tuple_of_what_was_given(self) -> None:
        shape = (2,)
        assert Descriptor(1, "a", "b", shape, np.uint8).shape is shape
        assert Descriptor(1, "a", "b", [2], np.uint8).shape == (2,)
        assert Descriptor(1, "a", "b", np.array([2, 3]), np.uint8).shape == (2, 3)  # type: ignore[arg-type]

    def test_fortran_order(self) -> None:
        assert Descriptor(1, "a", "b", [2, 2], np.uint8, order="F").order == "F"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"shape": [None, None], "format": [("u", 8)]}, "Cannot have multiple unknown dimensions"),
            ({"shape": [None, None], "dtype": "zz", "format": [("z", 8)]}, "Cannot have multiple unknown"),
            ({"dtype": np.uint8, "format": [("u", 8)], "order": "X"}, "Only one of dtype and format can be"),
            ({"order": "X"}, "One of dtype and format must be specified"),
            (
                {"shape": [None], "dtype": np.uint8, "order": "X"},
                "Cannot have unknown dimensions when using numpy",
            ),
            ({"dtype": np.uint8, "order": "X"}, "Order must be 'C' or 'F'"),
            (
                {"dtype": np.object_, "order": "X", "shape": [None]},
                "Cannot use dtype that has reference-counted",
            ),
            ({"dtype": [("x", "<u2"), ("y", "O")]}, "Cannot use dtype that has reference-counted objects"),
            ({"dtype": "S0", "shape": [None]}, "Cannot use zero-sized dtype"),
            ({"dtype": "V0"}, "Cannot use zero-sized dtype"),
            ({"format": [("z", 8)], "order": "F"}, "When specifying format, order must be 'C'"),
            ({"format": [], "order": "F"}, "When specifying format, order must be 'C'"),
            ({"format": []}, "empty format"),
            ({"format": [("u", 0), ("z", 8)]}, r"zero-length field \(bug_compat mismatch\?\)"),
            ({"format": [("z", 8), ("u", 0)]}, r"illegal format \(z, 8\)"),
            ({"format": [("f", 0)]}, "zero-length field"),
            ({"format": [("z", -1)]}, "negative-length field"),
            ({"format": [("f", 16)]}, r"illegal format \(f, 16\)"),
            ({"format": [("c", 16)]}, r"illegal format \(c, 16\)"),
            ({"format": [("0", 8)]}, r"illegal format \(0, 8\)"),
            ({"format": [("uu", 8)]}, r"illegal format \(uu, 8\)"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, object], message: str) -> None:
        kwargs = {"shape": [2], **kwargs}
        with pytest.raises(ValueError, match=f"^{message}"):
            Descriptor(1, "a", "b", **kwargs)  # type: ignore[arg-type]

    def test_invalid_dtype_is_numpys_type_error(self) -> None:
        with pytest.raises(TypeError, match="data type 'zz' not understood"):
            Descriptor(1, "a", "b", [None], "zz")

    @pytest.mark.parametrize(
        "fmt",
        [
            [("u", 1)],
            [("i", 65)],
            [("u", 128)],
            [("b", 1)],
            [("b", 16)],
            [("f", 32)],
            [("f", 64)],
            [("c", 8)],
        ],
    )
    def test_legal_formats(self, fmt: list[tuple[str, int]]) -> None:
        assert Descriptor(1, "a", "b", [2], format=fmt).itemsize_bits == fmt[0][1]


class TestProperties:
    def test_itemsize_bits(self) -> None:
        assert Descriptor(1, "a", "b", [2], "<u4").itemsize_bits == 32
        assert Descriptor(1, "a", "b", [2], [("x", "u1"), ("y", ">u4")]).itemsize_bits == 40
        assert Descriptor(1, "a", "b", [2], format=[("u", 3), ("i", 9), ("f", 64)]).itemsize_bits == 76

    def test_is_variable_size(self) -> None:
        assert Descriptor(1, "a", "b", [None, 2], format=[("u", 8)]).is_variable_size()
        assert not Descriptor(1, "a", "b", [2], format=[("u", 8)]).is_variable_size()

    @pytest.mark.parametrize(
        ("shape", "fmt", "expected"),
        [
            ([2], [("u", 8)], True),
            ([1000], [("u", 8)], True),  # size is not considered
            ([None], [("u", 8)], False),
            ([8], [("u", 3)], False),  # a whole number of bytes in total is not enough
            ([2], [("u", 4), ("i", 4)], True),
            ([2], [("u", 65)], False),
        ],
    )
    def test_allow_immediate(
        self, shape: list[int | None], fmt: list[tuple[str, int]], expected: bool
    ) -> None:
        assert Descriptor(1, "a", "b", shape, format=fmt).allow_immediate() is expected

    def test_dynamic_shape(self) -> None:
        assert Descriptor(1, "a", "b", [None, 3], format=[("u", 8)]).dynamic_shape(10) == [3, 3]
        assert Descriptor(1, "a", "b", [3, None, 2], format=[("u", 8)]).dynamic_shape(13) == [3, 2, 2]
        assert Descriptor(1, "a", "b", [None, 0, 3], format=[("u", 8)]).dynamic_shape(7) == [0, 0, 3]
        fixed = Descriptor(1, "a", "b", [2, 3], format=[("u", 8)])
        assert fixed.dynamic_shape(0) is fixed.shape

    def test_compatible_shape(self) -> None:
        d = Descriptor(1, "a", "b", [None, 3], format=[("u", 8)])
        assert [d.compatible_shape(s) for s in [(2, 3), (0, 3), [5, 3], (2, 4), (3,), (2, 3, 1)]] == [
            True,
            True,
            True,
            False,
            False,
            False,
        ]
        assert Descriptor(1, "a", "b", [], format=[("u", 8)]).compatible_shape(())

    def test_module_and_repr(self) -> None:
        assert Descriptor.__module__ == "spead2"
        assert repr(Descriptor(1, "a", "b", [2], np.uint8)).startswith("<spead2.Descriptor object at ")


def header(descr: str = "'<u2'", fortran_order: str = "False", shape: str = "(2,)", extra: str = "") -> bytes:
    """A numpy header from the source text of its values."""
    return f"{{'descr': {descr}, 'fortran_order': {fortran_order}, 'shape': {shape}{extra}}}".encode()


class TestFromRaw:
    def test_format(self) -> None:
        d = Descriptor.from_raw(raw_descriptor(0x1000, b"x", b"d", [2, None], [("u", 8)]), FLAVOUR)
        assert type(d) is Descriptor
        assert (d.id, d.name, d.description, d.shape, d.dtype, d.order, d.format) == (
            0x1000,
            "x",
            "d",
            (2, None),
            None,
            "C",
            [("u", 8)],
        )

    def test_item_from_raw(self) -> None:
        item = spead2.Item.from_raw(raw_descriptor(1, shape=[1], format=[("u", 8)]), FLAVOUR)
        assert type(item) is spead2.Item
        assert (item.version, item.value) == (1, None)

    def test_numpy_header_wins(self) -> None:
        raw = raw_descriptor(1, shape=[5], format=[("u", 8)], numpy_header=numpy_header("<u2", (2, 3)))
        d = Descriptor.from_raw(raw, FLAVOUR)
        assert (d.shape, d.dtype, d.order, d.format) == ((2, 3), np.dtype("<u2"), "C", None)

    def test_fortran_and_records(self) -> None:
        d = Descriptor.from_raw(raw_descriptor(1, numpy_header=numpy_header(">u2", (2, 3), True)), FLAVOUR)
        assert (d.dtype, d.order) == (np.dtype(">u2"), "F")
        descr = [("x", "|u1"), ("y", ">f8", (2,))]
        d = Descriptor.from_raw(raw_descriptor(1, numpy_header=numpy_header(descr, ())), FLAVOUR)
        assert d.dtype == np.dtype(descr)
        assert d.shape == ()

    def test_descr_is_given_to_np_dtype(self) -> None:
        def dtype_of(descr: object) -> np.dtype:
            return Descriptor.from_raw(
                raw_descriptor(1, numpy_header=numpy_header(descr, (1,))), FLAVOUR
            ).dtype

        assert dtype_of("uint16") == np.dtype("uint16")
        assert dtype_of(None) == np.dtype(float)
        assert dtype_of(("<u2", 2)) == np.dtype(("<u2", (2,)))
        assert dtype_of([("", "|V1"), ("a", "<u2")]).names == ("f0", "a")

    def test_header_whitespace(self) -> None:
        for header in [
            b"  {'descr': '<u2', 'fortran_order': False, 'shape': (2,)}   \n",
            b"\t{'descr': '<u2', 'fortran_order': False, 'shape': ()}",
        ]:
            assert Descriptor.from_raw(raw_descriptor(1, numpy_header=header), FLAVOUR).dtype == np.dtype(
                "<u2"
            )

    def test_header_shape_may_hold_bools_and_zeros(self) -> None:
        raw = raw_descriptor(1, numpy_header=b"{'descr': '<u2', 'fortran_order': False, 'shape': (True, 0)}")
        assert Descriptor.from_raw(raw, FLAVOUR).shape == (True, 0)

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            (b"['not', 'a', 'dict']", "Descriptor is not a dictionary: ['not', 'a', 'dict']"),
            (b"{1, 2}", "Descriptor is not a dictionary: {1, 2}"),
            (b"{}", "Descriptor does not contain the correct keys: []"),
            (b"{1: 2}", "Descriptor does not contain the correct keys: [1]"),
            (
                b"{'descr': '<u2', 'shape': (2,)}",
                "Descriptor does not contain the correct keys: ['descr', 'shape']",
            ),
            (
                header(extra=", 'foo': 1"),
                "Descriptor does not contain the correct keys: ['descr', 'foo', 'fortran_order', 'shape']",
            ),
            (header("'zz'", "1", "(-1,)"), "shape is not valid: (-1,)"),
            (header(shape="[2, 3]"), "shape is not valid: [2, 3]"),
            (header(shape="2"), "shape is not valid: 2"),
            (header(shape="(2.0,)"), "shape is not valid: (2.0,)"),
            (header("'zz'", "1"), "fortran_order is not a valid bool: 1"),
            (header("'zz'", "0"), "fortran_order is not a valid bool: 0"),
            (header("'zz'"), "descr is not a valid dtype descriptor: 'zz'"),
            (header("5"), "descr is not a valid dtype descriptor: 5"),
            (header("''"), "descr is not a valid dtype descriptor: ''"),
            (header("('<u2', 'x')"), "invalid shape in fixed-type tuple."),
            (header("'|O'"), "Cannot use dtype that has reference-counted objects"),
            (header("[]"), "Cannot use zero-sized dtype"),
        ],
    )
    def test_malformed_headers(self, header: bytes, message: str) -> None:
        with pytest.raises(ValueError) as info:
            Descriptor.from_raw(raw_descriptor(1, numpy_header=header), FLAVOUR)
        assert str(info.value) == message

    def test_unparsable_headers(self) -> None:
        def message(raw_header: bytes) -> str:
            with pytest.raises(ValueError) as info:
                Descriptor.from_raw(raw_descriptor(1, numpy_header=raw_header), FLAVOUR)
            return str(info.value)

        unclosed = header()[:-1].decode()
        assert message(unclosed.encode()) == (
            f"Cannot parse descriptor: {unclosed!r}\n"
            f"Exception: SyntaxError(\"'{{' was never closed\", ('<unknown>', 1, 1, {unclosed!r}, 1, 0))"
        )
        assert message(b"{}\x00") == (
            "Cannot parse descriptor: '{}\\x00'\n"
            "Exception: SyntaxError('source code string cannot contain null bytes')"
        )
        assert message(b"   ") == (
            "Cannot parse descriptor: '   '\n"
            "Exception: SyntaxError('invalid syntax', ('<unknown>', 0, 0, '', 0, 0))"
        )

    def test_header_with_code_is_literal_evals_error(self) -> None:
        raw = raw_descriptor(1, numpy_header=b"{'descr': int(3), 'fortran_order': False, 'shape': (2,)}")
        with pytest.raises(ValueError, match=r"^malformed node or string"):
            Descriptor.from_raw(raw, FLAVOUR)

    def test_header_with_unsortable_keys(self) -> None:
        with pytest.raises(TypeError):
            Descriptor.from_raw(raw_descriptor(1, numpy_header=b"{1: 2, 'a': 3}"), FLAVOUR)

    def test_non_ascii(self) -> None:
        with pytest.raises(UnicodeDecodeError, match="'ascii' codec can't decode byte 0xc3 in position 3"):
            Descriptor.from_raw(raw_descriptor(1, b"caf\xc3\xa9", shape=[1], format=[("u", 8)]), FLAVOUR)
        with pytest.raises(UnicodeDecodeError):
            Descriptor.from_raw(raw_descriptor(1, b"x", b"\xe9", shape=[1], format=[("u", 8)]), FLAVOUR)
        with pytest.raises(UnicodeDecodeError):
            Descriptor.from_raw(raw_descriptor(1, numpy_header=b"{'descr': '<u2', 'x': '\xe9'}"), FLAVOUR)

    def test_error_precedence(self) -> None:
        # the numpy header is parsed first, then the name, then the description, then the rest
        with pytest.raises(ValueError, match="Cannot parse"):
            Descriptor.from_raw(raw_descriptor(1, b"\xff", numpy_header=b"{"), FLAVOUR)
        with pytest.raises(UnicodeDecodeError, match="0xff"):
            Descriptor.from_raw(raw_descriptor(1, b"\xff", b"\xfe", format=[("z", 8)]), FLAVOUR)

    def test_legacy_errors(self) -> None:
        with pytest.raises(ValueError, match=r"^empty format$"):
            Descriptor.from_raw(raw_descriptor(1, shape=[1]), FLAVOUR)
        with pytest.raises(ValueError, match=r"^Cannot have multiple unknown dimensions$"):
            Descriptor.from_raw(raw_descriptor(1, shape=[None, None], format=[("u", 8)]), FLAVOUR)
        with pytest.raises(ValueError, match=r"^illegal format \(\xe9, 8\)$"):
            Descriptor.from_raw(raw_descriptor(1, shape=[1], format=[("\xe9", 8)]), FLAVOUR)

    def test_swap_endian(self) -> None:
        def dtype_with(flavour: spead2.Flavour, descr: object) -> np.dtype:
            return Descriptor.from_raw(
                raw_descriptor(1, numpy_header=numpy_header(descr, (1,))), flavour
            ).dtype

        assert dtype_with(SWAP, "<u2") == np.dtype(">u2")
        assert dtype_with(SWAP, ">f8") == np.dtype("<f8")
        assert dtype_with(SWAP, "|S3") == np.dtype("S3")
        assert dtype_with(SWAP, [("x", "u1"), ("y", ">f8")]) == np.dtype([("x", "u1"), ("y", "<f8")])
        # legacy formats are always big-endian: not affected
        d = Descriptor.from_raw(raw_descriptor(1, shape=[1], format=[("u", 16)]), SWAP)
        assert d.format == [("u", 16)]


class TestToRaw:
    def test_numpy(self) -> None:
        raw = Descriptor(0x1000, "a", "b", [2, 3], "<u2").to_raw(FLAVOUR)
        assert (raw.id, raw.name, raw.description, raw.shape, raw.format) == (0x1000, b"a", b"b", [2, 3], [])
        assert raw.numpy_header == b"{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}"

    def test_numpy_fortran_records_and_swap(self) -> None:
        raw = Descriptor(1, "a", "b", [2, 3], ">u2", order="F").to_raw(FLAVOUR)
        assert raw.numpy_header == b"{'descr': '>u2', 'fortran_order': True, 'shape': (2, 3)}"
        d = Descriptor(1, "a", "b", [], [("x", "u1"), ("y", ">f8", (2,))])
        assert (
            d.to_raw(FLAVOUR).numpy_header
            == b"{'descr': [('x', '|u1'), ('y', '>f8', (2,))], 'fortran_order': False, 'shape': ()}"
        )
        assert (
            d.to_raw(SWAP).numpy_header
            == b"{'descr': [('x', '|u1'), ('y', '<f8', (2,))], 'fortran_order': False, 'shape': ()}"
        )

    def test_format(self) -> None:
        raw = Descriptor(1, "a", "b", [None], format=[("u", 3), ("i", 5)]).to_raw(SWAP)
        assert (raw.shape, raw.format, raw.numpy_header) == ([None], [("u", 3), ("i", 5)], b"")

    @pytest.mark.parametrize("dtype", ["<u2", ">i8", "|S3", "<U2", [("a", "<u2"), ("b", ">f4")], "<c16"])
    @pytest.mark.parametrize("order", ["C", "F"])
    def test_round_trip(self, dtype: object, order: str) -> None:
        d = Descriptor(0x1234, "name", "description", [3, 2], dtype, order=order)
        for flavour in (FLAVOUR, SWAP):
            back = Descriptor.from_raw(d.to_raw(flavour), flavour)
            assert (back.id, back.name, back.description, back.shape, back.dtype, back.order) == (
                d.id,
                d.name,
                d.description,
                d.shape,
                d.dtype,
                d.order,
            )
