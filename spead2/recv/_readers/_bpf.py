"""Compiling tcpdump filter expressions with libpcap: through pcapy-ng (which bundles libpcap) or,
failing that, the system's libpcap through ctypes.  The compiled classic BPF program is run by
the C pcap walker, as libpcap's own offline filter would run it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

from spead2.recv._readers._net import ReaderValueError

#: PCAP_NETMASK_UNKNOWN: only the "broadcast" primitive needs the netmask.
NETMASK_UNKNOWN = 0xFFFFFFFF
MISSING_COMPILER = (
    "pcap filters need libpcap's filter compiler: install pcapy-ng "
    "(pip install 'aiospead2[pcap-filter]') or libpcap"
)

Insn = tuple[int, int, int, int]
Compiler = Callable[[int, int, str], list[Insn]]


class CompilerMissingError(RuntimeError):
    """No filter compiler is installed (see MISSING_COMPILER)."""


def _pcapy_compiler() -> Compiler | None:
    try:
        import pcapy
    except ImportError:
        return None

    def compile_pcapy(linktype: int, snaplen: int, expression: str) -> list[Insn]:
        try:
            program = pcapy.compile(linktype, snaplen, expression, 1, NETMASK_UNKNOWN)
        except pcapy.PcapError as exc:
            raise ReaderValueError(f"invalid pcap filter {expression!r}: {exc}") from None
        return [(int(c), int(jt), int(jf), int(k)) for c, jt, jf, k in program.get_bpf()]

    return compile_pcapy


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


def _libpcap_compiler(path: str | None = None) -> Compiler | None:
    name = path or ctypes.util.find_library("pcap") or ctypes.util.find_library("wpcap")
    if not name:
        return None
    try:
        lib: Any = ctypes.CDLL(name)
    except OSError:
        return None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_BpfProgram),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]

    def compile_libpcap(linktype: int, snaplen: int, expression: str) -> list[Insn]:
        handle = lib.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise MemoryError("pcap_open_dead failed")
        try:
            program = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1, NETMASK_UNKNOWN) != 0:
                message = lib.pcap_geterr(handle).decode(errors="replace")
                raise ReaderValueError(f"invalid pcap filter {expression!r}: {message}")
            try:
                return [
                    (insn.code, insn.jt, insn.jf, insn.k)
                    for insn in (program.bf_insns[i] for i in range(program.bf_len))
                ]
            finally:
                lib.pcap_freecode(ctypes.byref(program))
        finally:
            lib.pcap_close(handle)

    return compile_libpcap


@functools.cache
def find_compiler() -> Compiler | None:
    """pcapy-ng if installed, else the system's libpcap, else None."""
    return _pcapy_compiler() or _libpcap_compiler()


def compile_filter(linktype: int, snaplen: int, expression: str) -> list[Insn]:
    """The BPF program of ``expression`` for frames of ``linktype``.  Raises ValueError with
    libpcap's message if it does not compile, CompilerMissingError if there is no compiler."""
    compiler = find_compiler()
    if compiler is None:
        raise CompilerMissingError(MISSING_COMPILER)
    return compiler(linktype, snaplen, expression)
