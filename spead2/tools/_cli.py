"""What the command-line tools share: argument errors on one line, the live status line, units,
and running a coroutine on an event loop that turns Ctrl-C into a clean stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

_T = TypeVar("_T")


class ToolError(Exception):
    """A problem to report as one line (``prog: error: ...``) with exit status 1."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_log_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--log",
        metavar="LEVEL",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="log level of spead2's messages (on stderr) [%(default)s]",
    )


NO_IBV = "ibverbs is not supported by aiospead2 (it receives and sends with ordinary sockets)"


def add_ibv_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, prefix: str = "") -> None:
    """The reference's ibverbs options, accepted so that its command lines parse; ``--ibv`` itself
    is refused with :data:`NO_IBV`."""
    parser.add_argument(f"--{prefix}ibv", action="store_true", help="use ibverbs [not supported]")
    parser.add_argument(f"--{prefix}ibv-vector", type=int, default=0, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument(f"--{prefix}ibv-max-poll", type=int, default=10, metavar="N", help=argparse.SUPPRESS)


def setup_logging(level: str, status: StatusLine | None = None) -> None:
    handler: logging.Handler = _StatusAwareHandler(status) if status is not None else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # not subscriptable at run time before Python 3.11
    _StreamHandler = logging.StreamHandler


class _StatusAwareHandler(_StreamHandler):
    """Clears the live status line before a log line, so that they do not mix on a terminal."""

    def __init__(self, status: StatusLine) -> None:
        super().__init__(status.out)
        self._status = status

    def emit(self, record: logging.LogRecord) -> None:
        self._status.clear()
        super().emit(record)


def positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def cpu_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of CPUs: {text!r}") from None


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """``value`` with an SI prefix: si(1234567, "pkt/s") -> '1.23 Mpkt/s'."""
    for threshold, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def size(n_bytes: float) -> str:
    for threshold, prefix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n_bytes >= threshold:
            return f"{n_bytes / threshold:.3g} {prefix}"
    return f"{int(n_bytes)} B"


class StatusLine:
    """A live line on ``out``: rewritten in place on a terminal, printed as plain periodic lines
    otherwise (logs, pipes)."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self._shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + text)
            self._shown = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def clear(self) -> None:
        """Removes the line from a terminal (before other output)."""
        if self.tty and self._shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._shown = False

    def finish(self) -> None:
        """Leaves the last line on the terminal and moves past it."""
        if self.tty and self._shown:
            self.out.write("\n")
            self.out.flush()
            self._shown = False


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Callable[[asyncio.Event], Coroutine[Any, Any, _T]], *, use_uvloop: bool = True) -> _T:
    """Runs ``main(stop)`` on a new loop; SIGINT/SIGTERM set ``stop`` (a second Ctrl-C
    interrupts for real, as KeyboardInterrupt)."""
    loop = new_event_loop(use_uvloop)
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    handled: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        stop.set()
        # The next one is not handled: Ctrl-C twice stops a tool that does not stop by itself.
        loop.remove_signal_handler(signum)

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
                handled.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not POSIX
                pass
        return loop.run_until_complete(main(stop))
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class Rate:
    """Rates of counters between successive samples."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}  # counters start at zero
        self._last_time = time.monotonic()

    def sample(self, counters: Mapping[str, float]) -> dict[str, float]:
        now = time.monotonic()
        last, self._last = self._last, dict(counters)
        elapsed, self._last_time = now - self._last_time, now
        if elapsed <= 0:
            return dict.fromkeys(counters, 0.0)
        return {key: (value - last.get(key, 0)) / elapsed for key, value in counters.items()}
