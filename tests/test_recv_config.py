"""StreamConfig, RingStreamConfig, StreamStatConfig, StreamStats and the stat indices."""

from __future__ import annotations

import copy

import pytest

import spead2
import spead2.recv
from spead2.recv import RingStreamConfig, StreamConfig, StreamStatConfig, StreamStats, stream_stat_indices

CORE = [
    "heaps",
    "incomplete_heaps_evicted",
    "incomplete_heaps_flushed",
    "packets",
    "batches",
    "max_batch",
    "single_packet_heaps",
    "search_dist",
    "worker_blocked",
]


def test_stream_config_defaults() -> None:
    c = StreamConfig()
    assert StreamConfig.DEFAULT_MAX_HEAPS == 4
    assert (c.max_heaps, c.substreams, c.bug_compat, c.memcpy) == (4, 1, 0, spead2.MEMCPY_STD)
    assert (c.stop_on_stop_item, c.allow_unsized_heaps, c.allow_out_of_order) == (True, True, False)
    assert (c.stream_id, c.explicit_start) == (0, False)
    assert isinstance(c.memory_allocator, spead2.MemoryAllocator)
    assert c.max_heap_size == StreamConfig.DEFAULT_MAX_HEAP_SIZE == 1 << 30
    assert [s.name for s in c.stats] == CORE


def test_stream_config_kwargs_and_properties() -> None:
    pool = spead2.MemoryPool(0, 100, 2, 1)
    c = StreamConfig(
        max_heaps=7,
        substreams=3,
        bug_compat=spead2.BUG_COMPAT_PYSPEAD_0_5_2,
        memcpy=spead2.MEMCPY_NONTEMPORAL,
        memory_allocator=pool,
        stop_on_stop_item=False,
        allow_unsized_heaps=False,
        allow_out_of_order=True,
        stream_id=2**64 - 1,
        explicit_start=True,
    )
    assert (c.max_heaps, c.substreams, c.bug_compat, c.memcpy) == (7, 3, 7, 1)
    assert c.memory_allocator is pool
    assert (c.stop_on_stop_item, c.allow_unsized_heaps, c.allow_out_of_order, c.explicit_start) == (
        False,
        False,
        True,
        True,
    )
    c.max_heaps = 2
    c.memory_allocator = None
    c.allow_out_of_order = 0
    assert c.max_heaps == 2 and c.memory_allocator is None and c.allow_out_of_order is False


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_heaps": 0}, ValueError, "max_heaps cannot be 0"),
        ({"substreams": 0}, ValueError, "substreams cannot be 0"),
        ({"bug_compat": 8}, ValueError, "unknown compatibility bits"),
        ({"memcpy": 5}, ValueError, "Unknown memcpy"),
        ({"max_heaps": -1}, TypeError, "non-negative"),
        ({"max_heaps": 2.5}, TypeError, "integer"),
        ({"allow_out_of_order": "yes"}, TypeError, "bool"),
        ({"memory_allocator": object()}, TypeError, "MemoryAllocator"),
        ({"foo": 1}, TypeError, "unexpected keyword argument 'foo'"),
        ({"max_heap_size": 0}, ValueError, "max_heap_size"),
    ],
)
def test_stream_config_rejects(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        StreamConfig(**kwargs)


def test_stream_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        StreamConfig(4)  # type: ignore[call-arg]


def test_ring_config() -> None:
    r = RingStreamConfig()
    assert RingStreamConfig.DEFAULT_HEAPS == 4
    assert (r.heaps, r.contiguous_only, r.incomplete_keep_payload_ranges) == (4, True, False)
    r = RingStreamConfig(heaps=9, contiguous_only=False, incomplete_keep_payload_ranges=True)
    assert (r.heaps, r.contiguous_only, r.incomplete_keep_payload_ranges) == (9, False, True)
    with pytest.raises(ValueError, match="heaps must be at least 1"):
        RingStreamConfig(heaps=0)
    with pytest.raises(TypeError):
        RingStreamConfig(bar=1)


def test_custom_stats() -> None:
    c = StreamConfig()
    assert c.next_stat_index() == 9
    assert c.add_stat("foo") == 9
    assert c.add_stat("peak", StreamStatConfig.Mode.MAXIMUM) == 10
    assert c.get_stat_index("peak") == 10 and c.get_stat_index("heaps") == 0
    assert c.next_stat_index() == 11
    with pytest.raises(ValueError, match="A statistic called foo already exists"):
        c.add_stat("foo")
    with pytest.raises(ValueError, match="already exists"):
        c.add_stat("packets")
    with pytest.raises(IndexError, match="nope is not a known statistic name"):
        c.get_stat_index("nope")
    assert [(s.name, s.mode) for s in c.stats][-2:] == [
        ("foo", StreamStatConfig.Mode.COUNTER),
        ("peak", StreamStatConfig.Mode.MAXIMUM),
    ]
    # the list is a copy
    c.stats.clear()
    assert len(c.stats) == 11


def test_config_copy_is_independent() -> None:
    c = StreamConfig()
    d = copy.copy(c)
    d.add_stat("x")
    d.max_heaps = 9
    assert len(c.stats) == 9 and c.max_heaps == 4


def test_stat_config() -> None:
    counter = StreamStatConfig("a")
    maximum = StreamStatConfig("b", StreamStatConfig.Mode.MAXIMUM)
    assert counter.mode is StreamStatConfig.Mode.COUNTER
    assert (counter.combine(3, 4), maximum.combine(3, 4)) == (7, 4)
    assert counter == StreamStatConfig("a") and counter != maximum
    assert [m.value for m in StreamStatConfig.Mode] == [0, 1]


def test_stat_indices() -> None:
    for i, name in enumerate(CORE):
        assert getattr(stream_stat_indices, name.upper()) == i


def make_stats(config: list[StreamStatConfig], values: list[int]) -> StreamStats:
    return StreamStats(config, values)


def test_stream_stats_access() -> None:
    config = StreamConfig()
    config.add_stat("foo")
    stats = make_stats(config.stats, list(range(10, 19)) + [5])
    assert len(stats) == 10 and list(stats) == CORE + ["foo"]
    assert stats["heaps"] == 10 and stats[0] == 10 and stats.heaps == 10 and stats["foo"] == 5
    assert stats.max_batch == 15 and stats.worker_blocked == 18
    assert "foo" in stats and "zzz" not in stats and stats.get("zzz", 3) == 3
    assert stats.keys() == CORE + ["foo"] and stats.values()[0] == 10 and stats.items()[0] == ("heaps", 10)
    with pytest.raises(KeyError):
        stats["nope"]
    with pytest.raises(IndexError):
        stats[10]
    with pytest.raises(IndexError):
        stats[-1]
    stats["foo"] = 7
    stats[0] = 1
    stats.packets = 3
    assert (stats["foo"], stats["heaps"], stats[3]) == (7, 1, 3)
    assert stats.config == config.stats
    assert stats.drops == dict.fromkeys(spead2.recv.DROP_REASONS, 0)


def test_stream_stats_arithmetic() -> None:
    config = StreamConfig()
    config.add_stat("peak", StreamStatConfig.Mode.MAXIMUM)
    a = StreamStats(config.stats, [1, 0, 0, 10, 1, 5, 0, 0, 0, 3], {"duplicate": 2}, 100)
    b = StreamStats(config.stats, [2, 1, 0, 20, 1, 7, 0, 0, 0, 1], {"duplicate": 1, "bad_magic": 4}, 50)
    c = a + b
    assert c.values() == [3, 1, 0, 30, 2, 7, 0, 0, 0, 3]
    assert c.payload_bytes == 150
    assert c.drops["duplicate"] == 3 and c.drops["bad_magic"] == 4
    assert a.values()[0] == 1  # + makes a new object
    a += b
    assert a == c
    with pytest.raises(ValueError, match="config must match"):
        _ = a + StreamStats(StreamConfig().stats)
    with pytest.raises(TypeError):
        _ = a + 1  # type: ignore[operator]
