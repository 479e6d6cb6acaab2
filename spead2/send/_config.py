"""Send-side configuration: StreamConfig, RateMethod, GroupMode."""

from __future__ import annotations

import enum
import math
import operator
from typing import Any, ClassVar


class RateMethod(enum.Enum):
    """How the rate limit is applied.  Only software pacing exists here (``HW`` is for ibverbs,
    which this project does not have), so every method paces in software."""

    SW = 0
    HW = 1
    AUTO = 2


class GroupMode(enum.Enum):
    """Packet order of heaps sent together with ``send_heaps``."""

    ROUND_ROBIN = 0
    SERIAL = 1


def _non_negative_rate(value: Any) -> float:
    rate = float(value)
    if not (rate >= 0.0 and math.isfinite(rate)):
        raise ValueError("rate must be non-negative")
    return rate


def _burst_rate_ratio(value: Any) -> float:
    ratio = float(value)
    if not (ratio >= 1.0 and math.isfinite(ratio)):
        raise ValueError("burst rate ratio must be at least 1.0 and finite")
    return ratio


def _max_heaps(value: Any) -> int:
    heaps = operator.index(value)
    if heaps <= 0:
        raise ValueError("max_heaps must be positive")
    return heaps


def _size(value: Any) -> int:
    size = operator.index(value)
    if size < 0:
        raise OverflowError("size must be non-negative")
    return size


def _rate_method(value: Any) -> RateMethod:
    if not isinstance(value, RateMethod):
        raise TypeError(f"rate_method must be a RateMethod, not {type(value).__name__}")
    return value


class StreamConfig:
    """Configuration shared by every send stream (keyword arguments only; each is also an
    attribute, validated when set)."""

    __module__ = "spead2.send"

    DEFAULT_MAX_PACKET_SIZE: ClassVar[int] = 1472
    DEFAULT_MAX_HEAPS: ClassVar[int] = 4
    DEFAULT_BURST_SIZE: ClassVar[int] = 65536
    DEFAULT_BURST_RATE_RATIO: ClassVar[float] = 1.05
    DEFAULT_RATE_METHOD: ClassVar[RateMethod] = RateMethod.AUTO

    _CHECKS: ClassVar[dict[str, Any]] = {
        "max_packet_size": _size,
        "rate": _non_negative_rate,
        "burst_size": _size,
        "max_heaps": _max_heaps,
        "burst_rate_ratio": _burst_rate_ratio,
        "rate_method": _rate_method,
    }

    max_packet_size: int
    rate: float
    burst_size: int
    max_heaps: int
    burst_rate_ratio: float
    rate_method: RateMethod

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        rate: float = 0.0,
        burst_size: int = DEFAULT_BURST_SIZE,
        max_heaps: int = DEFAULT_MAX_HEAPS,
        burst_rate_ratio: float = DEFAULT_BURST_RATE_RATIO,
        rate_method: RateMethod = DEFAULT_RATE_METHOD,
    ) -> None:
        self.max_packet_size = max_packet_size
        self.rate = rate
        self.burst_size = burst_size
        self.max_heaps = max_heaps
        self.burst_rate_ratio = burst_rate_ratio
        self.rate_method = rate_method

    def __setattr__(self, name: str, value: Any) -> None:
        check = self._CHECKS.get(name)
        if check is None:
            raise AttributeError(f"'StreamConfig' object has no attribute '{name}'")
        object.__setattr__(self, name, check(value))

    @property
    def burst_rate(self) -> float:
        """The catch-up rate: ``rate * burst_rate_ratio`` (bytes per second)."""
        return self.rate * self.burst_rate_ratio

    def _copy(self) -> StreamConfig:
        return StreamConfig(**{name: getattr(self, name) for name in self._CHECKS})

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._CHECKS)
        return f"spead2.send.StreamConfig({fields})"
