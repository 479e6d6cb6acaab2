"""StreamStats: a snapshot of a stream's statistics, by name or by index."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from spead2._drops import DROP_REASONS
from spead2.recv._config import CORE_STATS, StreamStatConfig


class StreamStats:
    """Statistics of a stream: dict-like by name (iteration gives names), list-like by index.

    Beyond the reference, ``drops`` maps each reason a packet can be dropped for (see
    ``DROP_REASONS``) to how many were, and ``payload_bytes`` counts the payload bytes received
    (duplicates excluded).
    """

    __slots__ = ("_config", "_drops", "_payload_bytes", "_values")

    # core statistics as attributes (properties installed below)
    heaps: int
    incomplete_heaps_evicted: int
    incomplete_heaps_flushed: int
    packets: int
    batches: int
    max_batch: int
    single_packet_heaps: int
    search_dist: int
    worker_blocked: int

    def __init__(
        self,
        config: Sequence[StreamStatConfig],
        values: Sequence[int] | None = None,
        drops: Mapping[str, int] | None = None,
        payload_bytes: int = 0,
    ) -> None:
        self._config = list(config)
        self._values = list(values) if values is not None else [0] * len(self._config)
        if len(self._values) != len(self._config):
            raise ValueError("values do not match the statistics config")
        self._payload_bytes = payload_bytes
        self._drops = dict.fromkeys(DROP_REASONS, 0)
        if drops:
            self._drops.update(drops)

    @property
    def config(self) -> list[StreamStatConfig]:
        return list(self._config)

    @property
    def drops(self) -> dict[str, int]:
        return dict(self._drops)

    @property
    def payload_bytes(self) -> int:
        return self._payload_bytes

    def _index(self, key: int | str) -> int:
        if isinstance(key, str):
            for i, stat in enumerate(self._config):
                if stat.name == key:
                    return i
            raise KeyError(key)
        index = operator.index(key)
        if not 0 <= index < len(self._values):
            raise IndexError(index)
        return index

    def __getitem__(self, key: int | str) -> int:
        return self._values[self._index(key)]

    def __setitem__(self, key: int | str, value: int) -> None:
        self._values[self._index(key)] = operator.index(value)

    def __contains__(self, name: object) -> bool:
        return any(stat.name == name for stat in self._config)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return (stat.name for stat in self._config)

    def keys(self) -> list[str]:
        return [stat.name for stat in self._config]

    def values(self) -> list[int]:
        return list(self._values)

    def items(self) -> list[tuple[str, int]]:
        return [(stat.name, value) for stat, value in zip(self._config, self._values, strict=True)]

    def __len__(self) -> int:
        return len(self._values)

    def _combined(self, other: StreamStats) -> tuple[list[int], dict[str, int], int]:
        if not isinstance(other, StreamStats):
            raise TypeError(f"cannot add StreamStats and {type(other).__name__}")
        if self._config != other._config:
            raise ValueError("config must match to add stats together")
        values = [
            stat.combine(a, b) for stat, a, b in zip(self._config, self._values, other._values, strict=True)
        ]
        drops = {name: self._drops[name] + other._drops[name] for name in DROP_REASONS}
        return values, drops, self._payload_bytes + other._payload_bytes

    def __add__(self, other: StreamStats) -> StreamStats:
        return StreamStats(self._config, *self._combined(other))

    def __iadd__(self, other: StreamStats) -> StreamStats:
        self._values, self._drops, self._payload_bytes = self._combined(other)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamStats):
            return NotImplemented
        return (self._config, self._values, self._drops, self._payload_bytes) == (
            other._config,
            other._values,
            other._drops,
            other._payload_bytes,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "StreamStats({" + ", ".join(f"{k!r}: {v}" for k, v in self.items()) + "})"


def _core_property(index: int) -> property:
    def get(self: StreamStats) -> int:
        return self._values[index]

    def set(self: StreamStats, value: int) -> None:
        self._values[index] = operator.index(value)

    return property(get, set)


for _i, _stat in enumerate(CORE_STATS):
    setattr(StreamStats, _stat.name, _core_property(_i))
