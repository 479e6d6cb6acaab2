"""The overload resolver (spead2._overload) on its own: binding, tests, the error text."""

from __future__ import annotations

import socket

import pytest

from spead2._overload import Overload, describe, first_is, resolve_overload

OVERLOADS = (
    Overload(
        ("port", "max_size", "host"), {"max_size": 10, "host": ""}, first_is(socket.socket, negate=True)
    ),
    Overload(("sock", "max_size"), {"max_size": 10}, first_is(socket.socket)),
)


def test_binds_positional_and_keyword_with_defaults() -> None:
    assert resolve_overload("f", OVERLOADS, (5,), {"host": "h"}) == (
        0,
        {"port": 5, "max_size": 10, "host": "h"},
    )
    with socket.socket() as sock:
        assert resolve_overload("f", OVERLOADS, (), {"sock": sock, "max_size": 3}) == (
            1,
            {"sock": sock, "max_size": 3},
        )


def test_first_argument_type_picks_the_overload() -> None:
    with socket.socket() as sock:
        assert resolve_overload("f", OVERLOADS, (sock,), {})[0] == 1
        # a socket where the port overload's first parameter is: neither applies
        with pytest.raises(TypeError, match=r"f\(\) takes one of"):
            resolve_overload("f", OVERLOADS, (sock, 1, "h"), {})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, 2, 3, 4), {}), ((1,), {"port": 2}), ((1,), {"unknown": 2})],
)
def test_calls_that_bind_nowhere_list_the_overloads(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError) as info:
        resolve_overload("f", OVERLOADS, args, kwargs)
    assert str(info.value) == describe("f", OVERLOADS)
    assert str(info.value) == "f() takes one of:\n    (port, max_size=10, host='')\n    (sock, max_size=10)"


def test_applies_sees_which_arguments_were_given() -> None:
    seen: list[frozenset[str]] = []
    overload = Overload(("a", "b"), {"b": 0}, lambda bound, given: seen.append(given) is None)
    assert resolve_overload("g", [overload], (1,), {}) == (0, {"a": 1, "b": 0})
    assert seen == [frozenset({"a"})]


def test_required_parameter_after_defaults() -> None:
    """As the reference's UdpStream(thread_pool, endpoints, config=..., buffer_size=..., ttl)."""
    overload = Overload(("a", "b", "c"), {"b": 2})
    assert resolve_overload("h", [overload], (1,), {"c": 3}) == (0, {"a": 1, "b": 2, "c": 3})
    assert resolve_overload("h", [overload], (1, 5, 3), {}) == (0, {"a": 1, "b": 5, "c": 3})
    with pytest.raises(TypeError):
        resolve_overload("h", [overload], (1,), {})
