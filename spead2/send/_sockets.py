"""Sockets for the send streams: the constructors' overloads, address resolution, options.

``UdpStream`` and ``TcpStream`` take several argument lists (see py-send.rst); ``udp_args`` and
``tcp_args`` turn any of them into one :class:`UdpArgs` / :class:`TcpArgs`, and the ``*_socket``
functions make the socket those describe, non-blocking, for the C sender.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spead2._overload import TCP_BUFFER_SIZE, Overload, resolve_overload
from spead2.recv._readers._net import (
    bind,
    check_int,
    check_port,
    check_str,
    make_socket,
    resolve_one,
    set_receive_buffer,
    setsockopt,
)
from spead2.send._config import StreamConfig

#: send.UdpStream.DEFAULT_BUFFER_SIZE and send.TcpStream.DEFAULT_BUFFER_SIZE (the reference's).
UDP_DEFAULT_BUFFER_SIZE = 512 * 1024
TCP_DEFAULT_BUFFER_SIZE = TCP_BUFFER_SIZE


@dataclass
class UdpArgs:
    endpoints: list[tuple[str, int]]
    config: StreamConfig
    buffer_size: int = UDP_DEFAULT_BUFFER_SIZE
    interface_address: str = ""
    ttl: int | None = None
    interface_index: int | None = None
    sock: socket.socket | None = None


@dataclass
class TcpArgs:
    endpoints: list[tuple[str, int]]
    config: StreamConfig
    buffer_size: int = TCP_DEFAULT_BUFFER_SIZE
    interface_address: str = ""
    sock: socket.socket | None = None


def _kinds_match(bound: Mapping[str, Any], given: frozenset[str]) -> bool:
    """The arguments that tell the forms apart have their form's types."""
    return all(isinstance(bound[name], kind) for name, kind in _KINDS.items() if name in bound)


#: Arguments that tell the forms apart by their type.
_KINDS: dict[str, type] = {
    "socket": socket.socket,
    "ttl": int,
    "interface_index": int,
    "interface_address": str,
}


def _endpoints(value: Any) -> list[tuple[str, int]]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError("endpoints must be a list of (host, port) tuples")
    result = []
    for endpoint in value:
        host, port = endpoint
        result.append((check_str(host, "host"), check_port(port)))
    if not result:
        raise ValueError("Endpoint list must be non-empty")
    return result


def _legacy_endpoint(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``(thread_pool, host, port, ...)``, the older form, as ``(thread_pool, [(host, port)], ...)``."""
    if len(args) >= 3 and isinstance(args[1], str) and isinstance(args[2], int):
        return (args[0], [(args[1], args[2])], *args[3:])
    return args


def _config(value: Any) -> StreamConfig:
    if not isinstance(value, StreamConfig):
        raise TypeError(f"config must be a spead2.send.StreamConfig, not {type(value).__name__}")
    return value


_DEFAULT = StreamConfig()
_UDP_DEFAULTS = {"config": _DEFAULT, "buffer_size": UDP_DEFAULT_BUFFER_SIZE}
_ENDPOINTS = ("thread_pool", "endpoints", "config", "buffer_size")
_UDP_FORMS = [
    Overload(("thread_pool", "socket", "endpoints", "config"), {"config": _DEFAULT}, _kinds_match),
    Overload((*_ENDPOINTS, "ttl", "interface_index"), _UDP_DEFAULTS, _kinds_match),
    Overload((*_ENDPOINTS, "ttl", "interface_address"), _UDP_DEFAULTS, _kinds_match),
    Overload((*_ENDPOINTS, "ttl"), _UDP_DEFAULTS, _kinds_match),
    Overload((*_ENDPOINTS, "interface_address"), {**_UDP_DEFAULTS, "interface_address": ""}, _kinds_match),
]


def udp_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, UdpArgs]:
    """(thread_pool, UdpArgs) from any of UdpStream's argument lists."""
    _, values = resolve_overload("UdpStream", _UDP_FORMS, _legacy_endpoint(args), kwargs)
    result = UdpArgs(_endpoints(values["endpoints"]), _config(values["config"]))
    if "socket" in values:
        result.sock = values["socket"]
        return values["thread_pool"], result
    result.buffer_size = check_int(values["buffer_size"], "buffer_size")
    if "ttl" in values:
        result.ttl = check_int(values["ttl"], "ttl", 0, 255)
    if "interface_address" in values:
        result.interface_address = check_str(values["interface_address"], "interface_address")
    if "interface_index" in values:
        result.interface_index = check_int(values["interface_index"], "interface_index")
    return values["thread_pool"], result


_TCP_FORMS = [
    Overload(("thread_pool", "socket", "config"), {"config": _DEFAULT}, _kinds_match),
    Overload(
        ("thread_pool", "endpoints", "config", "buffer_size", "interface_address"),
        {"config": _DEFAULT, "buffer_size": TCP_DEFAULT_BUFFER_SIZE, "interface_address": ""},
        _kinds_match,
    ),
]


def tcp_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, TcpArgs]:
    """(thread_pool, TcpArgs) from any of TcpStream's argument lists."""
    _, values = resolve_overload("TcpStream", _TCP_FORMS, _legacy_endpoint(args), kwargs)
    if "socket" in values:
        return values["thread_pool"], TcpArgs([], _config(values["config"]), sock=values["socket"])
    endpoints = _endpoints(values["endpoints"])
    if len(endpoints) != 1:
        raise ValueError("endpoints must contain exactly one element")
    result = TcpArgs(endpoints, _config(values["config"]))
    result.buffer_size = check_int(values["buffer_size"], "buffer_size")
    result.interface_address = check_str(values["interface_address"], "interface_address")
    return values["thread_pool"], result


# ---------------------------------------------------------------------------------------------


def _numeric(sockaddr: tuple[Any, ...]) -> tuple[str, int, int]:
    """(address, port, IPv6 scope id) of a resolved socket address."""
    return (sockaddr[0], sockaddr[1], sockaddr[3] if len(sockaddr) > 3 else 0)


def udp_socket(spec: UdpArgs) -> tuple[socket.socket, list[tuple[str, int, int]]]:
    """A non-blocking UDP socket set up as ``spec`` says, and the resolved destinations."""
    resolved = [resolve_one(host, port, socket.SOCK_DGRAM) for host, port in spec.endpoints]
    family = resolved[0][0]
    if any(fam != family for fam, _ in resolved):
        raise ValueError("all endpoints must have the same address family")
    destinations = [_numeric(sockaddr) for _, sockaddr in resolved]
    if spec.sock is not None:
        if spec.sock.type != socket.SOCK_DGRAM:
            raise ValueError("the socket must be a UDP socket")
        sock = spec.sock.dup()
        sock.setblocking(False)
        return sock, destinations
    sock = make_socket(family, socket.SOCK_DGRAM)
    set_receive_buffer(sock, spec.buffer_size, socket.SO_SNDBUF)
    v6 = family == socket.AF_INET6
    if spec.ttl is not None:
        if v6:
            setsockopt(sock, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, spec.ttl, "cannot set the TTL")
        else:
            setsockopt(sock, socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, spec.ttl, "cannot set the TTL")
        if spec.interface_address:
            interface = socket.inet_aton(resolve_one(spec.interface_address, 0, socket.SOCK_DGRAM)[1][0])
            setsockopt(sock, socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface, "cannot set the interface")
        if spec.interface_index is not None:
            index = spec.interface_index
            setsockopt(sock, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index, "cannot set the interface")
    elif spec.interface_address:
        bind(sock, resolve_one(spec.interface_address, 0, socket.SOCK_DGRAM)[1])
    sock.setblocking(False)
    return sock, destinations


def tcp_socket(spec: TcpArgs) -> tuple[socket.socket, tuple[Any, ...] | None]:
    """A TCP socket set up as ``spec`` says (not yet connected), and the address to connect to
    (None for the user's own, connected, socket)."""
    if spec.sock is not None:
        if spec.sock.type != socket.SOCK_STREAM:
            raise ValueError("the socket must be a TCP socket")
        return spec.sock.dup(), None
    host, port = spec.endpoints[0]
    family, sockaddr = resolve_one(host, port, socket.SOCK_STREAM)
    sock = make_socket(family, socket.SOCK_STREAM)
    set_receive_buffer(sock, spec.buffer_size, socket.SO_SNDBUF)
    if spec.interface_address:
        bind(sock, resolve_one(spec.interface_address, 0, socket.SOCK_STREAM)[1])
    return sock, sockaddr
