"""parse_range_list and the item layer's public names."""

from __future__ import annotations

import pytest

import spead2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2,3-5,8,9-11", [2, 3, 4, 5, 8, 9, 10, 11]),
        ("", []),
        (" 1 , 2-3 ", [1, 2, 3]),
        ("5-3", []),
        ("1-1", [1]),
        ("3,1,2", [3, 1, 2]),
        ("+1", [1]),
        ("1_000", [1000]),
    ],
)
def test_parse_range_list(text: str, expected: list[int]) -> None:
    assert spead2.parse_range_list(text) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [("a", "'a'"), ("1,,2", "''"), ("1-2-3", "'2-3'"), ("-1", "''"), ("1-", "''"), ("0x10", "'0x10'")],
)
def test_parse_range_list_errors(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid literal for int\\(\\) with base 10: {bad}$"):
        spead2.parse_range_list(text)


def test_public_names() -> None:
    for name in ("Descriptor", "Item", "ItemGroup", "RawDescriptor", "parse_range_list"):
        assert name in spead2.__all__
    assert issubclass(spead2.Item, spead2.Descriptor)
