"""Placeholder: the item layer (Descriptor, Item, ItemGroup, RawDescriptor) is being written."""

from __future__ import annotations


class RawDescriptor:
    pass


class Descriptor:
    pass


class Item(Descriptor):
    pass


class ItemGroup:
    pass


def parse_range_list(ranges: str) -> list[int]:
    raise NotImplementedError
