"""HeapGenerator and send.ItemGroup: heaps that carry what changed since the last heap."""

from __future__ import annotations

import weakref
from typing import Any

from spead2._flavour import Flavour
from spead2._items import Item
from spead2._items import ItemGroup as _ItemGroup
from spead2.send._heap import Heap

_CHOICES = ("stale", "all", "none")


class _Sent:
    """What was last sent of one item id: its value version, and when its descriptor went."""

    __slots__ = ("descriptor_at", "item", "version")

    def __init__(self, item: Item) -> None:
        self.item = weakref.ref(item)
        self.version: int | None = None
        self.descriptor_at: int | None = None


class HeapGenerator:
    """Makes heaps from an item group that carry only what receivers have not seen yet.

    ``descriptor_frequency``: re-send each descriptor once every that many heaps (None: only
    when it is new or its item was replaced).  ``flavour``: the flavour of the heaps made.
    """

    __module__ = "spead2.send"

    def __init__(
        self,
        item_group: _ItemGroup,
        descriptor_frequency: int | None = None,
        flavour: Flavour = Flavour(),  # noqa: B008 - Flavour is immutable
    ) -> None:
        # send.ItemGroup passes itself: keep no reference to ourselves (no cycle).
        self._item_group = None if item_group is self else item_group
        self._sent: dict[int, _Sent] = {}
        self._descriptor_frequency = descriptor_frequency
        self._heaps_made = 0
        self._flavour = flavour

    def _descriptor_due(self, item: Item, sent: _Sent) -> bool:
        if sent.descriptor_at is None:
            return True
        if (
            self._descriptor_frequency is not None
            and self._heaps_made - sent.descriptor_at >= self._descriptor_frequency
        ):
            return True
        if sent.item() is not item:  # the item was replaced: its value is new too
            sent.item = weakref.ref(item)
            sent.version = None
            return True
        return False

    def add_to_heap(self, heap: Heap, descriptors: str = "stale", data: str = "stale") -> Heap:
        """Adds to ``heap`` the descriptors and values chosen by ``descriptors`` and ``data``:
        ``'stale'`` (new or changed since last sent), ``'all'`` or ``'none'``."""
        if descriptors not in _CHOICES:
            raise ValueError("descriptors must be one of 'stale', 'all', 'none'")
        if data not in _CHOICES:
            raise ValueError("data must be one of 'stale', 'all', 'none'")
        group: Any = self._item_group if self._item_group is not None else self
        for item in group.values():
            sent = self._sent.get(item.id)
            if sent is None:
                sent = self._sent[item.id] = _Sent(item)
            if descriptors == "all" or (descriptors == "stale" and self._descriptor_due(item, sent)):
                heap.add_descriptor(item)
                sent.descriptor_at = self._heaps_made
            if item.value is not None and (
                data == "all" or (data == "stale" and sent.version != item.version)
            ):
                heap.add_item(item)
                sent.version = item.version
        self._heaps_made += 1
        return heap

    def get_heap(self, descriptors: str = "stale", data: str = "stale") -> Heap:
        """A new heap from :meth:`add_to_heap`."""
        return self.add_to_heap(Heap(self._flavour), descriptors, data)

    def get_start(self) -> Heap:
        """A heap holding only a start-of-stream marker."""
        heap = Heap(self._flavour)
        heap.add_start()
        return heap

    def get_end(self) -> Heap:
        """A heap holding only an end-of-stream marker."""
        heap = Heap(self._flavour)
        heap.add_end()
        return heap


class ItemGroup(_ItemGroup, HeapGenerator):
    """An item group that is its own heap generator."""

    __module__ = "spead2.send"

    def __init__(
        self,
        descriptor_frequency: int | None = None,
        flavour: Flavour = Flavour(),  # noqa: B008
    ) -> None:
        _ItemGroup.__init__(self)
        HeapGenerator.__init__(self, self, descriptor_frequency, flavour)
