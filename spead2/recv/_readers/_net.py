"""What the socket and file readers share: argument checks, address resolution, socket buffer
sizes, and errors that are both the natural Python type and what the reference raises.

The reference reports bad arguments (an out-of-range port, a negative size) as ``TypeError`` and
OS-level failures (an unknown host, a port in use, a missing capture file) as ``RuntimeError``.
Our errors keep their natural type (``ValueError``, ``OSError`` and its subclasses such as
``FileNotFoundError`` or ``socket.gaierror``) and also derive from the reference's, so code
written against either keeps working.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import operator
import socket
import sys
from typing import Any

_logger = logging.getLogger("spead2")

#: Largest value a socket option of type int can take.
_INT_MAX = 2**31 - 1


class ArgumentError(ValueError, TypeError):
    """An argument out of its range: a ValueError, and a TypeError as the reference raises."""


class ReaderValueError(ValueError, RuntimeError):
    """Bad input found while setting a reader up (a file that is not a capture, a filter that
    does not compile): a ValueError, and a RuntimeError as the reference raises."""


_compat: dict[type[BaseException], type[BaseException]] = {}


def runtime_compatible(exc: OSError, message: str) -> OSError:
    """An error of the same type as ``exc`` (e.g. FileNotFoundError, socket.gaierror), which is
    also a RuntimeError, with ``message`` as its text."""
    base = type(exc)
    cls = _compat.get(base)
    if cls is None:
        cls = type(base.__name__, (base, RuntimeError), {"__module__": base.__module__})
        _compat[base] = cls
    new = cls(exc.errno, message) if exc.errno is not None else cls(message)
    assert isinstance(new, OSError)
    return new


def task_error(task: asyncio.Task[Any]) -> BaseException | None:
    """What a finished task raised (None if it succeeded or was cancelled)."""
    return None if task.cancelled() else task.exception()


def check_int(value: Any, name: str, low: int = 0, high: int | None = None) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if number < low or (high is not None and number > high):
        bounds = f"{low}-{high}" if high is not None else f">= {low}"
        raise ArgumentError(f"{name} must be in the range {bounds}, not {number}")
    return number


def check_port(port: Any) -> int:
    return check_int(port, "port", 0, 65535)


def check_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def resolve(host: str, port: int, sock_type: int, family: int = socket.AF_UNSPEC) -> list[tuple[Any, ...]]:
    """The addresses ``host`` resolves to (family, sockaddr), in the resolver's order.  The empty
    string means any address (IPv4, as the reference binds it)."""
    if host == "":
        return [(socket.AF_INET, ("0.0.0.0", port))]
    try:
        infos = socket.getaddrinfo(host, port, family, sock_type)
    except socket.gaierror as exc:
        raise runtime_compatible(exc, f"cannot resolve {host!r}: {exc.strerror}") from None
    except UnicodeError as exc:
        raise ReaderValueError(f"cannot resolve {host!r}: {exc}") from None
    return [(info[0], info[4]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]


def resolve_one(host: str, port: int, sock_type: int) -> tuple[int, tuple[Any, ...]]:
    """The first address ``host`` resolves to, as the reference binds it."""
    found = resolve(host, port, sock_type)
    if not found:
        raise runtime_compatible(socket.gaierror(socket.EAI_NONAME, ""), f"cannot resolve {host!r}")
    return found[0]


def format_address(sockaddr: tuple[Any, ...]) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def is_multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_multicast
    except ValueError:
        return False


def make_socket(family: int, sock_type: int) -> socket.socket:
    try:
        return socket.socket(family, sock_type)
    except OSError as exc:
        raise runtime_compatible(exc, f"cannot create a socket: {exc.strerror}") from None


def bind(sock: socket.socket, sockaddr: tuple[Any, ...]) -> None:
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise runtime_compatible(exc, f"cannot bind to {format_address(sockaddr)}: {exc.strerror}") from None


def setsockopt(sock: socket.socket, level: int, option: int, value: int | bytes, what: str) -> None:
    try:
        sock.setsockopt(level, option, value)
    except OSError as exc:
        sock.close()
        raise runtime_compatible(exc, f"{what}: {exc.strerror}") from None


def _raise_limit_hint(size: int, option: int) -> str:
    if sys.platform.startswith("linux"):
        limit = "wmem_max" if option == socket.SO_SNDBUF else "rmem_max"
        return f"raise the limit with `sysctl -w net.core.{limit}={size}` (as root)"
    if sys.platform == "darwin" or "bsd" in sys.platform:
        return f"raise the limit with `sysctl -w kern.ipc.maxsockbuf={size * 2}` (as root)"
    return "raise the operating system's limit on socket buffers"


def set_receive_buffer(sock: socket.socket, size: int, option: int = socket.SO_RCVBUF) -> None:
    """Asks for a kernel receive buffer (or send buffer, with ``option=SO_SNDBUF``) of ``size``
    bytes (0: the OS default).  If the kernel grants less, logs a warning saying how to raise the
    limit; it is not an error."""
    if size <= 0:
        return
    request = min(size, _INT_MAX)
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, request)
        granted = sock.getsockopt(socket.SOL_SOCKET, option)
    except OSError as exc:
        _logger.warning("could not set the socket buffer size to %d: %s", size, exc.strerror)
        return
    if sys.platform.startswith("linux"):
        granted //= 2  # Linux doubles the request (for its bookkeeping) and reports that
    if granted < size:
        _logger.warning(
            "requested socket buffer size %d but only received %d: %s",
            size,
            granted,
            _raise_limit_hint(size, option),
        )
