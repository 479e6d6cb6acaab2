"""send.StreamConfig, HeapReference(List), HeapGenerator / send.ItemGroup: values, defaults,
validation, and which descriptors and values each heap carries."""

from __future__ import annotations

import numpy as np
import pytest

import spead2
import spead2.recv
import spead2.send
from spead2.send import StreamConfig


def test_config_defaults() -> None:
    config = StreamConfig()
    assert (config.max_packet_size, config.rate, config.burst_size, config.max_heaps) == (1472, 0.0, 65536, 4)
    assert config.burst_rate_ratio == 1.05 and config.rate_method is spead2.send.RateMethod.AUTO
    assert (StreamConfig.DEFAULT_MAX_PACKET_SIZE, StreamConfig.DEFAULT_MAX_HEAPS) == (1472, 4)
    assert StreamConfig(rate=100.0).burst_rate == pytest.approx(105.0)
    assert [m.value for m in spead2.send.GroupMode] == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": -1.0}, "rate must be non-negative"),
        ({"rate": float("nan")}, "rate must be non-negative"),
        ({"rate": float("inf")}, "rate must be non-negative"),
        ({"max_heaps": 0}, "max_heaps must be positive"),
        ({"burst_rate_ratio": 0.5}, "burst rate ratio must be at least 1.0"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamConfig(**kwargs)  # type: ignore[arg-type]
    config = StreamConfig()
    with pytest.raises(ValueError, match=message):
        setattr(config, *next(iter(kwargs.items())))


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        StreamConfig(1500)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        StreamConfig().max_packets = 3  # type: ignore[attr-defined]


def test_heap_reference_list() -> None:
    heap = spead2.send.Heap()
    ref = spead2.send.HeapReference(heap, cnt=5, substream_index=1, rate=3.0)
    assert (ref.heap, ref.cnt, ref.substream_index, ref.rate) == (heap, 5, 1, 3.0)
    default = spead2.send.HeapReference(heap)
    assert (default.cnt, default.substream_index, default.rate) == (-1, 0, -1.0)
    refs = spead2.send.HeapReferenceList([ref, default, ref])
    assert len(refs) == 3 and len(refs[1:]) == 2 and len(refs[::2]) == 2
    with pytest.raises(TypeError):
        refs[0]  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        spead2.send.HeapReferenceList([heap])  # type: ignore[list-item]


def received_items(heaps: list[spead2.send.Heap]) -> list[dict[str, object]]:
    """What a receiver's ItemGroup.update gives for each heap."""
    stream = spead2.send.BytesStream(spead2.ThreadPool())
    for heap in heaps:
        stream.send_heap(heap)
    receiver = spead2.recv.Stream(spead2.ThreadPool())
    receiver.add_buffer_reader(stream.getvalue())
    group = spead2.ItemGroup()
    return [{name: item.value for name, item in group.update(heap).items()} for heap in receiver]


def test_generator_sends_what_changed() -> None:
    group = spead2.send.ItemGroup()
    a = group.add_item(0x1000, "a", "", (), np.uint32, value=1)
    group.add_item(0x1001, "b", "", (2,), np.uint8, value=np.array([1, 2], np.uint8))
    group.add_item(0x1002, "c", "", (), np.uint8)  # no value: never sent as data
    first = group.get_heap()
    second = group.get_heap()  # nothing changed
    a.value = 5
    third = group.get_heap()
    updates = received_items([first, second, third])
    assert set(updates[0]) == {"a", "b"}
    assert updates[1] == {}
    assert updates[2] == {"a": 5}


def test_generator_choices_and_frequency() -> None:
    group = spead2.send.ItemGroup(descriptor_frequency=2)
    group.add_item(0x1000, "a", "", (), np.uint32, value=1)
    counts = [len(list(spead2.send.PacketGenerator(group.get_heap(data="none"), 1, 9000))) for _ in range(4)]
    heaps = [group.get_heap(descriptors="none", data="none") for _ in range(2)]
    assert all(len(h._entries) == 0 for h in heaps)
    assert len(group.get_heap(descriptors="all", data="all")._entries) == 2
    assert counts == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="descriptors must be one of"):
        group.get_heap(descriptors="some")
    with pytest.raises(ValueError, match="data must be one of"):
        group.get_heap(data="some")


def test_generator_resends_replaced_item() -> None:
    group = spead2.send.ItemGroup()
    group.add_item(0x1000, "a", "", (), np.uint32, value=1)
    group.get_heap()
    group.add_item(0x1000, "a2", "renamed", (), np.uint16, value=2)
    (update,) = received_items([group.get_heap()])
    assert update == {"a2": 2}


def test_heap_generator_over_another_group() -> None:
    items = spead2.ItemGroup()
    items.add_item(0x1000, "a", "", (), np.uint32, value=9)
    generator = spead2.send.HeapGenerator(items, flavour=spead2.Flavour(4, 64, 40, 0))
    heap = generator.get_heap()
    assert heap.flavour == spead2.Flavour(4, 64, 40, 0)
    assert received_items([heap, generator.get_start(), generator.get_end()])[0] == {"a": 9}
