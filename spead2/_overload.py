"""The one overload resolver, and the reference's default sizes (defined here once).

The reference's pybind11 methods take several overloads (``add_udp_reader(port, ...)``,
``add_udp_reader(socket, ...)``, ``UdpStream(thread_pool, hostname, port, ...)``, ...).  Each
overload is declared as an :class:`Overload`: its parameters in order, their defaults, and a
test of the bound arguments (by default: the first argument's type).  :func:`resolve_overload` binds the
call's arguments to each overload in turn, as Python would bind them to a function of that
signature, and returns the first that binds and passes its test; when none does, the
``TypeError`` lists every overload, as the reference's does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# ---- the reference's defaults (spead2 4.5.1), used by our readers and the stream classes ----

#: recv.Stream.DEFAULT_UDP_MAX_SIZE: the largest datagram a UDP reader accepts.
UDP_MAX_SIZE = 9200
#: recv.Stream.DEFAULT_UDP_BUFFER_SIZE: SO_RCVBUF asked for by a UDP reader.
UDP_BUFFER_SIZE = 8 * 1024 * 1024
#: recv.Stream.DEFAULT_TCP_MAX_SIZE: the largest packet a TCP reader accepts.
TCP_MAX_SIZE = 65536
#: recv.Stream.DEFAULT_TCP_BUFFER_SIZE: SO_RCVBUF asked for by a TCP reader.
TCP_BUFFER_SIZE = 212992

_REQUIRED: Any = object()

#: Bound arguments of an overload (every parameter, defaults filled in) -> whether it applies.
Test = Callable[[Mapping[str, Any], frozenset[str]], bool]


def first_is(kind: type | tuple[type, ...], negate: bool = False) -> Test:
    """A test on the type of the overload's first argument (``negate``: on it not being one)."""

    def test(bound: Mapping[str, Any], given: frozenset[str]) -> bool:
        first = next(iter(bound.values()))
        return isinstance(first, kind) != negate

    return test


@dataclass(frozen=True)
class Overload:
    """One overload: parameter names in order, defaults of the trailing ones, and its test."""

    params: Sequence[str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    applies: Test = lambda bound, given: True

    def signature(self) -> inspect.Signature:
        # A parameter without a default may follow one with a default (the reference's
        # ``UdpStream(thread_pool, endpoints, config=..., buffer_size=..., ttl)``): it gets a
        # marker default, and bind() rejects a call that leaves a marker in place.
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [
                inspect.Parameter(name, kind, default=self.defaults.get(name, _REQUIRED))
                for name in self.params
            ]
        )

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The arguments by name (defaults filled in) if the call binds and the test passes."""
        try:
            bound = self.signature().bind(*args, **kwargs)
        except TypeError:
            return None
        given = frozenset(bound.arguments)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        if any(value is _REQUIRED for value in arguments.values()):
            return None
        return arguments if self.applies(arguments, given) else None

    def describe(self) -> str:
        parts = [f"{name}={self.defaults[name]!r}" if name in self.defaults else name for name in self.params]
        return "(" + ", ".join(parts) + ")"


def describe(name: str, overloads: Sequence[Overload]) -> str:
    """The TypeError text listing the overloads of ``name``."""
    return f"{name}() takes one of:\n" + "\n".join(f"    {o.describe()}" for o in overloads)


def resolve_overload(
    name: str, overloads: Sequence[Overload], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[int, dict[str, Any]]:
    """The index of the first overload the call matches, and its arguments by name; raises
    TypeError (listing the overloads) when none does."""
    for index, overload in enumerate(overloads):
        bound = overload.bind(args, kwargs)
        if bound is not None:
            return index, bound
    raise TypeError(describe(name, overloads))
