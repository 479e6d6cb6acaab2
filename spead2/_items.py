"""The item layer: descriptors, items and item groups (pure Python + numpy).

A :class:`Descriptor` says how to turn the bytes of an item into a value: either a numpy dtype (from
a numpy header) or a legacy SPEAD format, a list of ``(code, bits)`` fields.  Formats whose fields
all have a numpy equivalent are decoded through a numpy dtype like numpy headers (the fast path:
values are views on the heap's memory); the others go through a bit-level slow path that builds
object arrays of Python values.
"""

from __future__ import annotations

import ast
import logging
import math
import numbers
import struct
from collections.abc import ItemsView, KeysView, Sequence, ValuesView
from typing import Any, Protocol

import numpy as np
import numpy.lib.format

from spead2 import _plan
from spead2._constants import _UNRESERVED_ID, BUG_COMPAT_SWAP_ENDIAN, STREAM_CTRL_ID
from spead2._descriptors import RawDescriptor

__all__ = ["Descriptor", "Item", "ItemGroup", "RawDescriptor", "parse_range_list"]

_logger = logging.getLogger("spead2")


class _Flavour(Protocol):
    @property
    def heap_address_bits(self) -> int: ...

    @property
    def bug_compat(self) -> int: ...


class _Heap(Protocol):
    @property
    def flavour(self) -> Any: ...

    def get_items(self) -> Sequence[Any]: ...

    def get_descriptors(self) -> Sequence[RawDescriptor]: ...


def parse_range_list(ranges: str) -> list[int]:
    """Expands a comma-separated list of numbers and inclusive ranges, such as ``"0,2-4"`` (->
    ``[0, 2, 3, 4]``); used for CPU affinity options.  An empty string gives an empty list."""
    if not ranges:
        return []
    result: list[int] = []
    for part in ranges.split(","):
        if "-" in part:
            start, end = part.split("-", 1)
            result.extend(range(int(start), int(end) + 1))
        else:
            result.append(int(part))
    return result


# ---------------------------------------------------------------------------------------------
# Legacy formats


def _field_dtype(code: str, bits: int) -> str | None:
    """The numpy dtype of a format field, or None if it has none (decoded bit by bit)."""
    if code in ("u", "i") and bits in (8, 16, 32, 64):
        return f">{code}{bits // 8}"
    if code == "f" and bits in (32, 64):
        return f">f{bits // 8}"
    if code == "b" and bits == 8:
        return "?"
    if code == "c" and bits == 8:
        return "S1"
    return None


def _check_format(format: Sequence[Sequence[Any]]) -> None:
    for code, bits in format:
        if bits == 0:
            raise ValueError("zero-length field (bug_compat mismatch?)")
        if bits < 0:
            raise ValueError("negative-length field")
        legal = code in ("u", "i", "b") or (code == "f" and bits in (32, 64)) or (code == "c" and bits == 8)
        if not legal:
            raise ValueError(f"illegal format ({code}, {bits})")
    if not format:
        raise ValueError("empty format")


def _format_dtypes(format: Sequence[Sequence[Any]]) -> tuple[np.dtype | None, np.dtype]:
    """The dtype of the fast path (None if some field has no numpy type) and of the slow path
    (numpy types where they exist, objects elsewhere)."""
    field_dtypes = [_field_dtype(code, bits) for code, bits in format]
    if len(field_dtypes) == 1:
        fast = None if field_dtypes[0] is None else np.dtype(field_dtypes[0])
        return fast, np.dtype(object)
    fields = [(f"f{i}", "O" if d is None else d) for i, d in enumerate(field_dtypes)]
    if None in field_dtypes:
        return None, np.dtype(fields)
    return np.dtype(fields), np.dtype(fields)


def _unpack_column(bits: np.ndarray, code: str, width: int) -> list[Any]:
    """Python values of one field, from an (elements, width) array of bits (MSB first)."""
    n = bits.shape[0]
    if width <= 64:
        padded = np.zeros((n, 64), np.uint8)
        padded[:, 64 - width :] = bits
        words = np.packbits(padded, axis=1).view(">u8").reshape(n)
        if code == "u":
            return words.tolist()
        if code == "b":
            return (words != 0).tolist()
        if code == "f":
            floats = words.view(">f8") if width == 64 else words.astype(">u4").view(">f4")
            return floats.tolist()
        if code == "c":
            return words.astype(np.uint8).view("S1").tolist()
        if width == 64:
            return words.view(">i8").tolist()
        if width < 63:
            signed = words.astype(np.int64)
            signed[signed >= 1 << (width - 1)] -= 1 << width
            return signed.tolist()
        values = words.tolist()
    else:
        pad = -width % 8
        padded = np.zeros((n, width + pad), np.uint8)
        padded[:, pad:] = bits
        values = [int.from_bytes(row.tobytes(), "big") for row in np.packbits(padded, axis=1)]
    if code == "b":
        return [bool(v) for v in values]
    if code == "i":
        sign = 1 << (width - 1)
        return [v - (sign << 1) if v >= sign else v for v in values]
    return values


def _pack_field(value: Any, code: str, width: int) -> int:
    """The bits of one field value, as a non-negative integer of ``width`` bits."""
    if code == "u":
        v = int(value)
        if not 0 <= v < 1 << width:
            raise ValueError(f"{v} is out of range for u{width}")
        return v
    if code == "i":
        v = int(value)
        if not -(1 << (width - 1)) <= v < 1 << (width - 1):
            raise ValueError(f"{v} is out of range for i{width}")
        return v & ((1 << width) - 1)
    if code == "b":
        return 1 if value else 0
    if code == "f":
        return int.from_bytes(struct.pack(">f" if width == 32 else ">d", float(value)), "big")
    # "c": a one-character str or bytes (a record field hands back bytes without trailing NULs)
    data = value.encode("ascii") if isinstance(value, str) else bytes(value)
    return data[0] if data else 0


# ---------------------------------------------------------------------------------------------
# numpy headers


def _parse_numpy_header(header: str) -> tuple[tuple[int, ...], str, np.dtype]:
    """Shape, order and dtype from a numpy header such as ``np.save`` writes."""
    try:
        d = ast.literal_eval(header)
    except SyntaxError as e:
        raise ValueError(f"Cannot parse descriptor: {header!r}\nException: {e!r}") from None
    if not isinstance(d, dict):
        raise ValueError(f"Descriptor is not a dictionary: {d!r}")
    keys = sorted(d.keys())
    if keys != ["descr", "fortran_order", "shape"]:
        raise ValueError(f"Descriptor does not contain the correct keys: {keys!r}")
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise ValueError(f"shape is not valid: {shape!r}")
    fortran_order = d["fortran_order"]
    if not isinstance(fortran_order, bool):
        raise ValueError(f"fortran_order is not a valid bool: {fortran_order!r}")
    try:
        dtype = np.dtype(d["descr"])
    except TypeError:
        raise ValueError(f"descr is not a valid dtype descriptor: {d['descr']!r}") from None
    return shape, "F" if fortran_order else "C", dtype


def _make_numpy_header(dtype: np.dtype, order: str, shape: Sequence[Any]) -> bytes:
    header = {
        "descr": numpy.lib.format.dtype_to_descr(dtype),
        "fortran_order": order == "F",
        "shape": tuple(shape),
    }
    return repr(header).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Descriptor


class Descriptor:
    """How the value of one SPEAD item is laid out.

    Exactly one of ``dtype`` (a numpy dtype) and ``format`` (a legacy SPEAD format: a list of
    ``(code, bits)`` fields with codes ``u``, ``i``, ``f``, ``b``, ``c``) describes an element;
    ``shape`` gives the dimensions, with at most one ``None`` for a dimension whose length follows
    from the size of the received data (legacy formats only).  ``order`` is ``'C'`` or, for numpy
    dtypes, ``'F'``.  Numpy dtypes may not hold Python objects and must not be empty.  Invalid
    combinations raise :exc:`ValueError`.
    """

    __module__ = "spead2"

    def __init__(
        self,
        id: Any,
        name: Any,
        description: Any,
        shape: Sequence[Any],
        dtype: Any = None,
        order: str = "C",
        format: Any = None,
    ) -> None:
        shape = tuple(shape)
        if sum(1 for dim in shape if dim is None) > 1:
            raise ValueError("Cannot have multiple unknown dimensions")
        if dtype is not None and format is not None:
            raise ValueError("Only one of dtype and format can be specified")
        if dtype is None and format is None:
            raise ValueError("One of dtype and format must be specified")
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.hasobject:
                raise ValueError("Cannot use dtype that has reference-counted objects")
            if dtype.itemsize == 0:
                raise ValueError("Cannot use zero-sized dtype")
            if any(dim is None for dim in shape):
                raise ValueError("Cannot have unknown dimensions when using numpy descriptor")
            if order not in ("C", "F"):
                raise ValueError("Order must be 'C' or 'F'")
            fast_dtype: np.dtype | None = dtype
            slow_dtype = dtype
            itemsize_bits = dtype.itemsize * 8
        else:
            if order != "C":
                raise ValueError("When specifying format, order must be 'C'")
            _check_format(format)
            fast_dtype, slow_dtype = _format_dtypes(format)
            itemsize_bits = sum(bits for _, bits in format)
        self.id = id
        self.name = name
        self.description = description
        self.shape = shape
        self.dtype = dtype
        self.order = order
        self.format = format
        # Derived once, like the reference: changing dtype or format afterwards is not supported.
        self._fast_dtype = fast_dtype
        self._slow_dtype = slow_dtype
        self._itemsize_bits = itemsize_bits
        self._is_string = format == [("c", 8)]
        self._target_dtypes: dict[str, np.dtype] = {}

    @property
    def itemsize_bits(self) -> int:
        """Size of one element in bits (the sum of the field widths for a legacy format)."""
        return self._itemsize_bits

    def is_variable_size(self) -> bool:
        """True when a dimension of the shape is ``None`` (sized from the data)."""
        return any(dim is None for dim in self.shape)

    def allow_immediate(self) -> bool:
        """Whether a small enough value may travel in an item pointer.  Not for variable-size items
        (an immediate does not say how long the value is) nor when an element is not a whole number
        of bytes (where the padding would go is not specified)."""
        return not self.is_variable_size() and self.itemsize_bits % 8 == 0

    def dynamic_shape(self, max_elements: int) -> Sequence[int]:
        """The shape with its variable dimension (if any) made as large as ``max_elements``
        elements allow (zero when another dimension is zero)."""
        shape = self.shape
        if not any(dim is None for dim in shape):
            return shape
        known = 1
        for dim in shape:
            if dim is not None:
                known *= dim
        variable = 0 if known == 0 else max_elements // known
        return [variable if dim is None else dim for dim in shape]

    def compatible_shape(self, shape: Sequence[int]) -> bool:
        """Whether ``shape`` has the right rank and matches every fixed dimension."""
        if len(shape) != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape, strict=True))

    @classmethod
    def from_raw(cls, raw_descriptor: RawDescriptor, flavour: _Flavour) -> Any:
        dtype = None
        format = None
        shape: tuple[Any, ...]
        if raw_descriptor.numpy_header:
            header = raw_descriptor.numpy_header.decode("ascii")
            shape, order, dtype = _parse_numpy_header(header)
            if flavour.bug_compat & BUG_COMPAT_SWAP_ENDIAN:
                dtype = dtype.newbyteorder()
        else:
            shape = tuple(raw_descriptor.shape)
            order = "C"
            format = raw_descriptor.format
        return cls(
            raw_descriptor.id,
            raw_descriptor.name.decode("ascii"),
            raw_descriptor.description.decode("ascii"),
            shape,
            dtype,
            order,
            format,
        )

    def to_raw(self, flavour: _Flavour) -> RawDescriptor:
        raw = RawDescriptor()
        raw.id = self.id
        raw.name = self.name.encode("ascii")
        raw.description = self.description.encode("ascii")
        raw.shape = self.shape
        if self.dtype is not None:
            dtype = self.dtype
            if flavour.bug_compat & BUG_COMPAT_SWAP_ENDIAN:
                dtype = dtype.newbyteorder()
            raw.numpy_header = _make_numpy_header(dtype, self.order, self.shape)
        else:
            raw.format = self.format
        return raw

    def _same_as(self, other: Descriptor) -> bool:
        """Whether two descriptors describe the same item the same way (re-issued descriptors)."""
        if (self.dtype is None) != (other.dtype is None):
            return False
        return (
            self.id == other.id
            and self.name == other.name
            and self.description == other.description
            and self.shape == other.shape
            and (self.dtype is None or self.dtype == other.dtype)
            and self.order == other.order
            and self.format == other.format
        )


# ---------------------------------------------------------------------------------------------
# Item


class Item(Descriptor):
    """A descriptor together with a current value and a version number.

    The version increases whenever the value is replaced, so consumers can tell which items a heap
    changed.  ``value`` (keyword only) gives the initial value without changing the version.
    """

    __module__ = "spead2"

    def __init__(self, *args: Any, value: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._value = value
        self.version = 1

    @property
    def value(self) -> Any:
        """The current value; assigning a new one increments ``version``.

        ``None`` cannot be assigned (SPEAD has no encoding for it).  Changing a mutable value in
        place does not change the version.
        """
        return self._value

    @value.setter
    def value(self, new_value: Any) -> None:
        if new_value is None:
            raise ValueError("Item value cannot be set to None")
        self._value = new_value
        self.version += 1

    def _target_dtype(self, new_order: Any) -> np.dtype:
        """The fast-path dtype converted to the byte order ``new_order`` (cached per order)."""
        fast = self._fast_dtype
        assert fast is not None
        if type(new_order) is not str:
            return fast.newbyteorder(new_order)  # let numpy reject it with its own message
        try:
            return self._target_dtypes[new_order]
        except KeyError:
            target = fast.newbyteorder(new_order)  # type: ignore[arg-type]  # numpy checks the value
            if target == fast:
                target = fast  # same layout: no conversion needed, keep the zero-copy view
            self._target_dtypes[new_order] = target
            return target

    def set_from_raw(self, raw_item: Any, new_order: str = "=") -> None:
        """Decode ``raw_item`` (a RawItem of a received heap) into the value.

        Numpy and whole-byte legacy types give views on the item's memory, converted to byte order
        ``new_order`` (``'='`` native, ``'|'`` as sent, or any order numpy's ``newbyteorder``
        accepts; conversion copies).  An immediate's value is right-aligned in its bytes.
        """
        data = (
            raw_item.view(np.ndarray)
            if isinstance(raw_item, np.ndarray)
            else np.frombuffer(raw_item, np.uint8)
        )
        itemsize_bits = self._itemsize_bits
        max_elements = data.shape[0] * 8 // itemsize_bits
        shape = self.dynamic_shape(max_elements)
        elements = math.prod(shape)
        if elements > max_elements:
            raise ValueError(f"Item {self.name} has too few elements for shape ({max_elements} < {elements})")
        size_bytes = (elements * itemsize_bits + 7) // 8
        # Note that data[-0:] is all of it: like the reference, a zero-size immediate is not special.
        data = data[-size_bytes:] if raw_item.is_immediate else data[:size_bytes]
        if self._fast_dtype is not None:
            array = data.view(self._fast_dtype)
            target = self._target_dtype(new_order)
            if target is not self._fast_dtype:
                array = array.astype(target)
            value = array.reshape(shape, order=self.order)  # type: ignore[call-overload]
            if self._is_string and len(shape) == 1:
                # A c8 string: the characters, without the NULs a numpy S1 array drops.
                value = value.tobytes().replace(b"\0", b"").decode("ascii")
            elif len(shape) == 0:
                value = value[()]
        else:
            if elements == 0:
                # The reference builds nested lists and np.array() stops at the first empty level.
                shape = shape[: list(shape).index(0) + 1]
            value = self._load_slow(data, shape, elements)
            if len(shape) == 0:
                value = value[()]
        self.value = value

    def _load_slow(self, data: np.ndarray, shape: Sequence[int], elements: int) -> np.ndarray:
        """Bit-level decoding of a format without a numpy dtype, into an object/record array."""
        bits = np.unpackbits(data)[: elements * self._itemsize_bits].reshape(elements, self._itemsize_bits)
        result = np.empty(shape, self._slow_dtype)
        array = result.reshape(elements)  # a view: filling it fills the result
        offset = 0
        names = self._slow_dtype.names
        for index, (code, width) in enumerate(self.format):
            column = _unpack_column(bits[:, offset : offset + width], code, width)
            if names is None:
                array[:] = column
            else:
                array[names[index]] = column
            offset += width
        return result

    def _transform_value(self) -> np.ndarray:
        """The value as a numpy array of the descriptor's type, order and (compatible) shape.

        A str or bytes value of a one-dimensional item is split into characters first.
        """
        value = self.value
        if value is None:
            raise ValueError("Cannot send a value of None")
        if isinstance(value, (bytes, str)) and len(self.shape) == 1:
            value = [value[i : i + 1] for i in range(len(value))]
        dtype = self._fast_dtype if self._fast_dtype is not None else self._slow_dtype
        array = np.asarray(value, dtype=dtype, order=self.order)  # type: ignore[call-overload]
        if not self.compatible_shape(array.shape):
            raise ValueError(f"Value has shape {array.shape}, expected {self.shape}")
        return array

    def to_buffer(self) -> Any:
        """The value's bytes as they go on the wire, as a buffer: a numpy array for numpy and
        whole-byte formats (transposed for Fortran order, so its memory is in wire order), else a
        bytearray of the packed bit fields."""
        array = self._transform_value()
        if self._fast_dtype is not None:
            return array.T if self.order == "F" else array
        fields = self.format
        names = array.dtype.names
        parts = []
        for element in array.ravel().tolist() if names is None else array.ravel():
            for index, (code, width) in enumerate(fields):
                field = element if names is None else element[index]
                parts.append(format(_pack_field(field, code, width), f"0{width}b"))
        bits = "".join(parts)
        bits += "0" * (-len(bits) % 8)
        return bytearray(int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"")


# ---------------------------------------------------------------------------------------------
# ItemGroup


class ItemGroup:
    """A set of items, looked up by id or by name, updated from received heaps.

    When a descriptor arrives for an id or name already present: if it describes the item exactly
    as before, nothing changes; otherwise the item(s) holding that id or that name are removed and
    a new item without a value takes their place, with a version above any removed one so that a
    consumer watching versions notices the change.
    """

    __module__ = "spead2"

    def __init__(self) -> None:
        self._by_id: dict[Any, Item] = {}
        self._by_name: dict[Any, Item] = {}
        # How update() sets each item from a received heap (see spead2._plan), for _plan_order.
        self._plan: dict[int, Any] = {}
        self._plan_order = "="

    def _remove_item(self, item: Item) -> None:
        del self._by_id[item.id]
        del self._by_name[item.name]
        self._plan = {}

    def _add_item(self, item: Item) -> None:
        old_by_id = self._by_id.get(item.id)
        old_by_name = self._by_name.get(item.name)
        if old_by_id is not None and old_by_id is old_by_name and old_by_id._same_as(item):
            if item.value is not None:
                old_by_id.value = item.value
            return
        version = item.version
        for old in (old_by_id, old_by_name):
            if old is not None and self._by_id.get(old.id) is old:
                self._remove_item(old)
                version = max(version, old.version + 1)
        item.version = version
        self._by_id[item.id] = item
        self._by_name[item.name] = item
        self._plan = {}

    def add_item(self, *args: Any, **kwargs: Any) -> Item:
        """Creates an :class:`Item` from the arguments and adds it as a descriptor would be added.

        An ``id`` of ``None`` picks the lowest free id from 0x1000 up.  If an identical item is
        already present it stays (the new item is returned but not added), taking the new value
        if one was given.
        """
        item = Item(*args, **kwargs)
        if item.id is None:
            item.id = _UNRESERVED_ID
            while item.id in self._by_id:
                item.id += 1
        self._add_item(item)
        return item

    def __getitem__(self, key: int | str) -> Item:
        if isinstance(key, numbers.Integral):
            return self._by_id[key]
        return self._by_name[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, numbers.Integral):
            return key in self._by_id
        return key in self._by_name

    def keys(self) -> KeysView[str]:
        """The names of the items."""
        return self._by_name.keys()

    def ids(self) -> KeysView[int]:
        """The ids of the items."""
        return self._by_id.keys()

    def values(self) -> ValuesView[Item]:
        """The items themselves."""
        return self._by_name.values()

    def items(self) -> ItemsView[str, Item]:
        """``(name, item)`` pairs."""
        return self._by_name.items()

    def __len__(self) -> int:
        return len(self._by_name)

    def update(self, heap: _Heap, new_order: str = "=") -> dict[str, Item]:
        """Applies a received heap: first its descriptors, then its item values.

        ``new_order`` is the byte order numpy values are converted to (numpy's ``newbyteorder``
        codes: ``'='`` native, the default; ``'|'`` leaves them as received).  Returns the items
        whose values the heap set, by name, in the order the heap holds them.  Items with no
        descriptor are skipped with a warning on the ``spead2`` logger.  An error stops the update
        where it happened; what was applied before stays applied.
        """
        for raw_descriptor in heap.get_descriptors():
            try:
                item = Item.from_raw(raw_descriptor, flavour=heap.flavour)
            except Exception as exc:
                _add_note(exc, f"in the descriptor of item {raw_descriptor.id:#x} ({raw_descriptor.name!r})")
                raise
            self._add_item(item)
        planned = getattr(heap, "_planned_items", None)
        if planned is not None:
            if new_order != self._plan_order:
                self._plan, self._plan_order = {}, new_order
            return _plan.apply(self._plan, self._by_id, new_order, *planned())
        updated: dict[str, Item] = {}
        for raw_item in heap.get_items():
            if raw_item.id <= STREAM_CTRL_ID:
                continue
            item = self._by_id.get(raw_item.id)
            if item is None:
                _logger.warning("Item with ID %#x received but there is no descriptor", raw_item.id)
                continue
            try:
                item.set_from_raw(raw_item, new_order=new_order)
            except Exception as exc:
                _add_note(exc, f"in the value of item {raw_item.id:#x} ({item.name!r})")
                raise
            item.version += 1
            updated[item.name] = item
        return updated


def _add_note(exc: BaseException, note: str) -> None:
    """Says which item an error is about without changing its message, which must stay the
    reference's (Python 3.11+; older Pythons just keep the message)."""
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)
