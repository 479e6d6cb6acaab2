"""add_udp_pcap_file_reader: replays the IPv4 UDP datagrams of a capture file.

The file is read in windows of ``WINDOW`` bytes into a reusable buffer (bounded memory; a file
truncated while it is replayed just ends early) and walked in C (``pcap.c``): records (classic
pcap, either byte order, micro- or nanosecond) or blocks (pcapng), link headers (Ethernet with or
without VLAN tags, Linux SLL / SLL2, raw IP, BSD loopback, and through dpkt's table of link header
sizes a few rarer link types), IPv4 and UDP headers, and an optional filter compiled by libpcap.
Each call feeds a budget of records to the kernel in batches, so a large file does not starve the
event loop.  Frames that are not unfragmented IPv4 UDP are skipped (and counted in a log line at
the end).  The stream stops at the end of the file.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import dpkt.pcap

from spead2._kernel import ensure, enum_names, ffi, lib
from spead2.recv._core import FULL, STOPPED, StreamCore
from spead2.recv._readers._bpf import compile_filter
from spead2.recv._readers._net import ReaderValueError, check_str, runtime_compatible
from spead2.recv._readers._stepped import SteppedReader

_logger = logging.getLogger("spead2")

#: Records walked per loop callback.
BUDGET = 16384
#: Bytes read from the file at a time (the buffer grows for larger records; the C walker refuses
#: records over 64 MiB).
WINDOW = 4 << 20
#: The first read holds at least this much: the file header, and a pcapng file's interface blocks.
FIRST_WINDOW = 1 << 16
#: pcapng files whose first packet comes before any interface description.
UNKNOWN_LINKTYPE = 0xFFFFFFFF
LINKTYPE_ETHERNET = 1
_SKIP_TEXT = {
    "filtered": "filtered out",
    "not_udp": "not IPv4 UDP",
    "fragment": "IPv4 fragments",
    "truncated": "truncated",
    "bad_length": "bad lengths",
    "linktype": "link type",
}
#: Why frames were skipped, in the order of sp2_pcap_skip (a new value there fails here at import).
SKIP_REASONS = tuple(
    _SKIP_TEXT[name]
    for value, name in enum_names("sp2_pcap_skip", "SP2_PCAP_SKIP_").items()
    if value < lib.SP2_PCAP_SKIP_COUNT
)

_DLT_NAMES = {
    value: name[4:]
    for name, value in vars(dpkt.pcap).items()
    if name.startswith("DLT_") and isinstance(value, int)
}


def _fixed_links() -> dict[int, int]:
    """Link types the C walker does not decode itself, with the size of their link header
    (dpkt's table): IPv4 follows it."""
    table: dict[int, int] = getattr(dpkt.pcap, "dltoff", {})
    return {lt: size for lt, size in table.items() if lib.sp2_pcap_link_kind(lt) == lib.SP2_LINK_NONE}


def _link_name(linktype: int) -> str:
    name = _DLT_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


class PcapReader(SteppedReader):
    def __init__(self, core: StreamCore, filename: Any, filter: Any = "") -> None:
        try:
            path = os.fspath(filename)
        except TypeError:
            raise TypeError(f"filename must be a str or path, not {type(filename).__name__}") from None
        expression = check_str(filter, "filter")
        super().__init__(core)
        self._path = os.fsdecode(path)
        self._file: io.BufferedReader | None = None
        self._buffer = bytearray()
        self._view: Any = None
        self._size = 0  # bytes of the file in the buffer
        self._at_eof = False
        self._native: Any = None
        try:
            self._open(path, expression)
        except BaseException:
            self._release()
            raise

    def _open(self, path: str | bytes, expression: str) -> None:
        try:
            self._file = open(path, "rb")  # (closed by close())
            try:
                os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except (AttributeError, OSError):  # not POSIX, or not a regular file: advice only
                pass
            self._fill(0, max(WINDOW, FIRST_WINDOW))
        except OSError as exc:
            raise runtime_compatible(exc, f"{self._path}: {exc.strerror or exc}") from None
        if self._size == 0:
            raise ReaderValueError(f"{self._path}: empty file, not a pcap or pcapng capture")
        out = ffi.new("sp2_pcap_reader **")
        linktype = ffi.new("uint32_t *")
        snaplen = ffi.new("uint32_t *")
        is_pcapng = ffi.new("int *")
        error = ffi.new("const char **")
        status = lib.sp2_pcap_reader_open(
            self._view, self._size, self._at_eof, out, linktype, snaplen, is_pcapng, error
        )
        ensure(status, self._path, ReaderValueError, error[0])
        self._native = ffi.gc(out[0], lib.sp2_pcap_reader_free)
        fixed = _fixed_links()
        for lt, header in fixed.items():
            lib.sp2_pcap_reader_add_fixed_link(self._native, lt, header)
        link = int(linktype[0])
        known = link == UNKNOWN_LINKTYPE or lib.sp2_pcap_link_kind(link) != lib.SP2_LINK_NONE or link in fixed
        if not known:
            raise ReaderValueError(
                f"{self._path}: pcap link type {_link_name(link)} is not supported "
                "(Ethernet, Linux SLL/SLL2, raw IP, loopback and a few others are)"
            )
        if expression:
            filter_link = LINKTYPE_ETHERNET if link == UNKNOWN_LINKTYPE else link
            program = compile_filter(filter_link, int(snaplen[0]) or 262144, expression)
            insns = ffi.new("sp2_bpf_insn[]", len(program))
            for i, (code, jt, jf, k) in enumerate(program):
                insns[i].code, insns[i].jt, insns[i].jf, insns[i].k = code, jt, jf, k
            status = lib.sp2_pcap_reader_set_filter(self._native, filter_link, insns, len(program))
            what = f"invalid pcap filter {expression!r}"
            ensure(status, what, ReaderValueError, "the compiled program is not valid")

    def _fill(self, keep: int, want: int) -> None:
        """Reads up to ``want`` bytes of the file after the ``keep`` bytes at the front of the
        buffer (the start of a record that ran past the last window), growing the buffer if
        needed."""
        assert self._file is not None
        if keep + want > len(self._buffer):
            grown = bytearray(max(2 * len(self._buffer), keep + want))
            grown[:keep] = self._buffer[:keep]
            if self._view is not None:
                ffi.release(self._view)
            self._buffer, self._view = grown, None
        if self._view is None:
            self._view = ffi.from_buffer(self._buffer)
        got = self._file.readinto(memoryview(self._buffer)[keep : keep + want])
        self._size = keep + got
        self._at_eof = got < want  # (a short read of a regular file is its end)

    def _next_window(self) -> None:
        pos = int(lib.sp2_pcap_reader_window_pos(self._native))
        keep = self._size - pos
        if keep:
            ffi.memmove(self._view, self._view + pos, keep)
        try:
            self._fill(keep, WINDOW)
        except OSError as exc:
            _logger.warning("%s: read error: %s; the rest of the file is ignored", self._path, exc)
            self._size, self._at_eof = keep, True
        lib.sp2_pcap_reader_set_window(self._native, self._view, self._size, self._at_eof)

    def _release(self) -> None:
        if self._native is not None:
            ffi.release(self._native)
            self._native = None
        if self._view is not None:
            ffi.release(self._view)
            self._view = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _step(self) -> None:
        ended = ffi.new("int *")
        need_more = ffi.new("int *")
        error = ffi.new("const char **")
        status = lib.sp2_pcap_reader_run_window(
            self._native, self._core.kernel, BUDGET, ended, need_more, error
        )
        reason = ffi.string(error[0]).decode() if error[0] != ffi.NULL else None
        done = bool(ended[0])
        if done:
            self._log_end(reason)
        self._core.handle_status(status)
        if self._closed or status == STOPPED:
            return
        if done:
            self._core.reader_finished(self)
        elif status != FULL:
            if need_more[0]:
                self._next_window()
            self._schedule()

    def _log_end(self, reason: str | None) -> None:
        counts = ffi.new("sp2_pcap_counts *")
        lib.sp2_pcap_reader_counts(self._native, counts)
        if reason is not None:
            offset = int(lib.sp2_pcap_reader_offset(self._native))
            _logger.warning("%s: %s at byte %d; the rest of the file is ignored", self._path, reason, offset)
        skipped = {name: int(counts.skipped[i]) for i, name in enumerate(SKIP_REASONS) if counts.skipped[i]}
        if skipped:
            detail = ", ".join(f"{n} {name}" for name, n in skipped.items())
            _logger.info(
                "%s: %d of %d frame(s) skipped (%s)",
                self._path,
                sum(skipped.values()),
                counts.records,
                detail,
            )
