"""spead2.Flavour: the flavour of a heap, as the item layer uses it."""

from __future__ import annotations

import pytest

import spead2

Flavour = spead2.Flavour


def fields(flavour: spead2.Flavour) -> tuple[int, int, int, int]:
    return (flavour.version, flavour.item_pointer_bits, flavour.heap_address_bits, flavour.bug_compat)


def test_default_is_spead_64_40() -> None:
    assert fields(Flavour()) == (4, 64, 40, 0)


@pytest.mark.parametrize("heap_address_bits", [8, 16, 24, 32, 40, 48, 56])
def test_heap_address_bits(heap_address_bits: int) -> None:
    assert fields(Flavour(4, 64, heap_address_bits)) == (4, 64, heap_address_bits, 0)


def test_keywords_and_bug_compat() -> None:
    flavour = Flavour(
        version=4, item_pointer_bits=64, heap_address_bits=48, bug_compat=spead2.BUG_COMPAT_PYSPEAD_0_5_2
    )
    assert fields(flavour) == (4, 64, 48, 7)
    assert Flavour(4, 64, 40, 255).bug_compat == 255


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((3, 64, 40), "Version is not supported"),
        ((4, 48, 40), "item_pointer_bits not supported"),
        ((4, 64, 0), "heap_address_bits out of range"),
        ((4, 64, 64), "heap_address_bits out of range"),
        ((4, 64, 41), "heap_address_bits not a multiple of 8"),
    ],
)
def test_invalid(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        Flavour(*args)


@pytest.mark.parametrize("bug_compat", [-1, 2**32, 1.0])
def test_invalid_bug_compat_is_a_type_error(bug_compat: object) -> None:
    with pytest.raises(TypeError):
        Flavour(4, 64, 40, bug_compat)  # type: ignore[arg-type]


def test_equality() -> None:
    assert Flavour() == Flavour(4, 64, 40, 0)
    assert Flavour() != Flavour(4, 64, 48)
    assert Flavour() != Flavour(4, 64, 40, 1)
    assert not (Flavour() == 5)
    assert Flavour() != 5


def test_read_only() -> None:
    with pytest.raises(AttributeError):
        Flavour().bug_compat = 3  # type: ignore[misc]


def test_bug_compat_flags() -> None:
    assert spead2.BUG_COMPAT_DESCRIPTOR_WIDTHS == 1
    assert spead2.BUG_COMPAT_SHAPE_BIT_1 == 2
    assert spead2.BUG_COMPAT_SWAP_ENDIAN == 4
    assert spead2.BUG_COMPAT_PYSPEAD_0_5_2 == 7


def test_two_arguments_are_rejected() -> None:
    with pytest.raises(TypeError):
        Flavour(4, 64)
