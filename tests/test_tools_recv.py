"""spead2_recv: argument handling, output, and end to end over UDP (demo), TCP and pcap.

End-to-end tests run the tool as a subprocess (``python -m spead2.tools.recv``); traffic only
goes to 127.0.0.1.  Tests that need a transport the build lacks are skipped, saying so.
"""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools import demo, recv
from spead2.tools.capture import PcapWriter

TIMEOUT = 60


def needs(method: str) -> Any:
    return pytest.mark.skipif(
        not hasattr(spead2.recv.Stream, method), reason=f"Stream.{method} is not implemented in this build"
    )


class ToolProcess:
    """A command-line tool run as a subprocess, whose stderr can be waited on line by line."""

    def __init__(self, module: str, args: Sequence[str], **kwargs: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, pipe: Any, lines: list[str]) -> None:
        for line in pipe:
            with self._cond:
                lines.append(line)
                self._cond.notify_all()
        with self._cond:
            lines.append("")  # EOF marker
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._stderr)

    def wait_for_stderr(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self._stderr):
                if self._stderr and self._stderr[-1] == "":
                    self.close()
                    raise AssertionError(f"exited before printing {text!r}: {''.join(self._stderr)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    raise AssertionError(f"timed out waiting for {text!r}: {''.join(self._stderr)}")
                self._cond.wait(left)

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"did not finish: {''.join(self._stdout)}{self.stderr}") from None
        self.close()
        return self.proc.returncode, "".join(self._stdout), "".join(self._stderr)

    def close(self) -> None:
        """Kills the process if it still runs, and releases the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for thread in self._threads:
            thread.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def run_tool(module: str, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout
    )


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_error(proc: subprocess.CompletedProcess[str], status: int, fragment: str) -> None:
    assert proc.returncode == status, proc.stdout + proc.stderr
    # Log lines (e.g. a socket-buffer warning) may come first; the error itself is one line.
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith(("WARNING ", "INFO "))]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


def summary_value(stdout: str, name: str) -> int:
    match = re.search(rf"^{name}\s+(\d+)\s*$", stdout, re.MULTILINE)
    assert match is not None, stdout
    return int(match[1])


def write_pcap(path: Path, packets: list[bytes], dst_port: int, src_port: int = 40000) -> None:
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for i, packet in enumerate(packets):
            writer.write(
                packet,
                (bytes([127, 0, 0, 1]), src_port),
                (bytes([127, 0, 0, 1]), dst_port),
                10**18 + i * 1000,
            )


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("8888", "udp", "", 8888),
        ("127.0.0.1:7148", "udp", "127.0.0.1", 7148),
        ("239.1.2.3:7148", "udp", "239.1.2.3", 7148),
        ("[::1]:9000", "udp", "::1", 9000),
        ("localhost:1", "udp", "localhost", 1),
        (":65535", "udp", "", 65535),
    ],
)
def test_parse_source(text: str, kind: str, host: str, port: int) -> None:
    source = recv.parse_source(text, tcp=False)
    assert (source.kind, source.host, source.port) == (kind, host, port)
    assert recv.parse_source(text, tcp=True).kind == "tcp"


def test_parse_source_file() -> None:
    assert recv.parse_source("capture.pcap", tcp=False) == recv.Source(
        "pcap", "capture.pcap", path="capture.pcap"
    )
    with pytest.raises(recv.ToolError, match="TCP sources"):
        recv.parse_source("capture.pcap", tcp=True)
    with pytest.raises(recv.ToolError, match="out of range"):
        recv.parse_source("70000", tcp=False)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "no source given (try --demo)"),
        (["--bogus", "8888"], "unrecognized arguments: --bogus"),
        (["--ring-heaps", "0", "8888"], "must be positive"),
        (["--ring-heaps", "many", "8888"], "not an integer"),
        (["0"], "port out of range"),
        (["--demo", "8888"], "--demo takes no sources"),
        (["--demo", "--tcp"], "cannot be combined with --tcp"),
        (["--mem-lower", "10", "--mem-upper", "5", "8888"], "--mem-lower is larger"),
    ],
)
def test_bad_arguments(args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        recv.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and err.startswith("spead2_recv: error: ")


def test_bad_arguments_subprocess() -> None:
    """As a program: one line, status 2, no usage block, no traceback."""
    assert_one_line_error(
        run_tool("spead2.tools.recv", "--concurrent-heaps", "-3", "8888"), 2, "must be positive"
    )


def test_missing_file_subprocess(tmp_path: Path) -> None:
    proc = run_tool("spead2.tools.recv", str(tmp_path / "nothing.pcap"))
    assert_one_line_error(proc, 1, "neither PORT, HOST:PORT nor an existing pcap file")


@needs("add_udp_reader")
def test_unreachable_address() -> None:
    """An address that is not this host's cannot be bound (TEST-NET-1; nothing is sent)."""
    proc = run_tool("spead2.tools.recv", f"192.0.2.1:{free_port()}")
    assert_one_line_error(proc, 1, "cannot receive from udp 192.0.2.1:")


@needs("add_tcp_reader")
def test_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_tool("spead2.tools.recv", "--tcp", f"127.0.0.1:{port}")
    assert_one_line_error(proc, 1, f"cannot receive from tcp 127.0.0.1:{port}")


# ---------------------------------------------------------------- output, without sockets


def receive_with_printer(argv: list[str], packets: list[bytes]) -> tuple[str, list[str]]:
    """Runs the tool's Receiver/Printer over a buffer-fed asyncio stream; returns (output, summary)."""
    import asyncio

    args = recv.parse_args(argv)
    out = io.StringIO()
    printer = recv.Printer(args, out, None)
    totals = recv.Totals()

    async def main() -> list[str]:
        config, ring_config = recv.make_configs(args)
        stream = spead2.recv.asyncio.Stream(None, config, ring_config)
        stream.add_buffer_reader(b"".join(packets))
        receiver = recv.Receiver("", stream, printer, totals, asyncio.Event())
        await receiver.run()
        return recv.summary_lines([receiver], totals, 1.0)

    summary = asyncio.run(main())
    return out.getvalue(), summary


def test_printer_default() -> None:
    out, summary = receive_with_printer(["8888"], demo.packets(5))
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0] == "heap 1: 5 items, 6.02 KiB (timestamp, frequency, label, spectrum, visibilities)"
    assert lines[4].startswith("heap 5: 6 items, 1.01 MiB (")
    text = "\n".join(summary)
    assert re.search(r"^heaps\s+5$", text, re.MULTILINE)
    assert re.search(r"^packets_dropped\s+0$", text, re.MULTILINE)
    assert "Received 5 heaps" in text


def test_printer_values_and_descriptors() -> None:
    out, _ = receive_with_printer(["--values", "--descriptors", "8888"], demo.packets(2))
    assert (
        "  descriptor 0x1600 'timestamp': shape=() format=[('u', 48)] 'ADC sample count (immediate)'" in out
    )
    assert "  label        = 'demo heap 1'" in out
    assert re.search(r"  spectrum +float32\[1024\] = \[ ?1\. +1\.5 +2\. \.\.\. ", out)
    assert "  timestamp    = 1004096" in out


def test_printer_quiet() -> None:
    out, summary = receive_with_printer(["-q", "8888"], demo.packets(3))
    assert out == ""
    assert "Received 3 heaps" in "\n".join(summary)


def test_printer_incomplete_and_drops() -> None:
    """A heap missing a packet is shown with --incomplete; garbage shows up as dropped by reason."""
    heaps = demo.heap_packets(5, stop=False)
    packets = [p for i, heap in enumerate(heaps) for p in (heap[:-2] + heap[-1:] if i == 4 else heap)]
    packets.append(b"\x00" * 40)  # not SPEAD
    out, summary = receive_with_printer(["--incomplete", "8888"], packets)
    assert re.search(r"^heap 5: INCOMPLETE, \d+ of \d+ bytes$", out, re.MULTILINE), out
    text = "\n".join(summary)
    assert re.search(r"^  bad_magic\s+1$", text, re.MULTILINE), text
    # the packet after the gap is dropped too (allow_out_of_order is off)
    assert re.search(r"^  out_of_order\s+1$", text, re.MULTILINE), text
    assert "Lost: 2 packets dropped, 1 incomplete heaps" in text


def test_reference_printer_and_session_parts() -> None:
    """--output reference: the reference's heap lines; Session.summary gives its end-of-stream block."""
    import asyncio

    args = recv.parse_args(["--output", "reference", "--values", "8888"])
    assert args.no_live  # the reference prints only its lines
    out = io.StringIO()
    printer = recv.make_printer(args, None)
    printer.out = out

    async def main() -> list[str]:
        session = recv.Session(args, None)
        session.printer = printer
        config, ring_config = recv.make_configs(args)
        stream = spead2.recv.asyncio.Stream(None, config, ring_config)
        stream.add_buffer_reader(b"".join(demo.packets(2)))
        receiver = recv.Receiver("", stream, printer, session.totals, session.limit, label="8888")
        session.receivers.append(receiver)
        session.tasks = [asyncio.ensure_future(receiver.run())]
        assert await session.poll(asyncio.Event(), interval=5) is False  # ends with the stream
        return session.summary(1.0, interrupted=False)

    summary = asyncio.run(main())
    lines = out.getvalue().splitlines()
    assert lines[0] == "Received heap 1 on stream 8888"
    assert "label = demo heap 0" in lines
    assert summary[0] == "Shutting down stream 8888 after 2 heaps"
    assert summary[1:] == [f"{key}: {value}" for key, value in receiver_stats(summary).items()]


def receiver_stats(summary: list[str]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in summary[1:])


def test_session_poll_returns_on_stop() -> None:
    import asyncio

    args = recv.parse_args(["-q", "8888"])

    async def main() -> bool:
        session = recv.Session(args, None)
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.tasks = [never]
        stop = asyncio.Event()
        stop.set()
        interrupted = await session.poll(stop, interval=5)
        never.cancel()
        return interrupted

    assert asyncio.run(main()) is True


def test_reference_name_defaults_to_reference_output() -> None:
    assert recv.parse_args(["8888"], recv.REFERENCE_PROG).output == "reference"
    assert recv.parse_args(["8888"]).output == "human"
    assert recv.parse_args(["--output", "human", "8888"], recv.REFERENCE_PROG).output == "human"


def test_ibv_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        recv.main(["--ibv", "8888"])
    assert info.value.code == 2
    assert "ibverbs is not supported" in capsys.readouterr().err
    assert recv.parse_args(["--ibv-vector", "1", "--ibv-max-poll", "3", "8888"]).ibv is False


# The reference's spead2_recv.py, fed by its spead2_send.py with these arguments, printed exactly this.
REFERENCE_SEND_ARGS = ["--heaps", "3", "--heap-size", "64", "--items", "2"]
REFERENCE_RECV_OUTPUT = """\
Received heap 1 on stream {name}
    Descriptor for Test item 0 (0x1000)
      description: A test item with arbitrary value
      format:      None
      dtype:       complex64
      shape:       (4,)
    Descriptor for Test item 1 (0x1001)
      description: A test item with arbitrary value
      format:      None
      dtype:       complex64
      shape:       (4,)
Test item 0 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Test item 1 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Received heap 2 on stream {name}
Test item 0 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Test item 1 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Received heap 3 on stream {name}
Test item 0 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Test item 1 = [0.+0.j 0.+0.j 0.+0.j 0.+0.j]
Shutting down stream {name} after 3 heaps
heaps: 3
incomplete_heaps_evicted: 0
incomplete_heaps_flushed: 0
packets: 4
"""


@pytest.mark.interop
@needs("add_udp_reader")
def test_reference_output_from_reference_sender(reference: Path) -> None:
    """spead2_recv.py prints what the reference's spead2_recv.py prints for the same stream."""
    import refvenv

    port = free_port()
    name = f"127.0.0.1:{port}"
    tool = ToolProcess("spead2.tools.recv", ["--output", "reference", "--values", "--descriptors", name])
    tool.wait_for_stderr(f"receiving from udp {name}")
    sender = Path(reference).parent / "spead2_send.py"
    proc = subprocess.run(
        refvenv.command(reference, str(sender), *REFERENCE_SEND_ARGS, name),
        capture_output=True, text=True, timeout=TIMEOUT, env=refvenv.clean_env(), cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert out.startswith(REFERENCE_RECV_OUTPUT.format(name=name)), out
    keys = [line.split(":")[0] for line in out.splitlines()[-9:]]
    assert keys[-5:] == ["batches", "max_batch", "single_packet_heaps", "search_dist", "worker_blocked"]


def test_format_value() -> None:
    import numpy as np

    assert recv.format_value(np.float64(1.5)) == "1.5"
    assert recv.format_value("x") == "'x'"
    assert recv.format_value(np.arange(3)) == "[0 1 2]"
    assert recv.format_value(np.arange(100)) == "[ 0 1 2 ... 97 98 99]"
    assert recv.format_value(np.zeros((2, 50), np.uint8)).endswith("(flattened)")
    assert recv.format_value(list(range(20))) == "[0, 1, 2, ... (20 elements)]"


# ---------------------------------------------------------------- end to end


@needs("add_udp_reader")
def test_demo() -> None:
    tool = ToolProcess("spead2.tools.recv", ["--demo", "--demo-heaps", "6", "--demo-rate", "40"])
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert out.startswith("Demo: a built-in sender streams 6 sample heaps to udp 127.0.0.1:")
    for index in range(6):
        assert f"heap {index + 1}: " in out
        assert f"  label        = 'demo heap {index}'" in out
    assert "  image        uint16[512,1024] = " in out  # the large heap (index 4)
    assert summary_value(out, "heaps") == 6
    assert summary_value(out, "packets_dropped") == 0
    assert "Demo: 6 data heaps and a stop heap sent, 6 received." in out
    # not a terminal: plain rate lines, ending with the averages
    last = [line for line in err.strip().splitlines() if not line.startswith("WARNING")][-1]
    pattern = r" *\d+\.\d s \| .*heaps/s \| .*pkt/s \| .* Gb/s \| 6 heaps, \d+ packets, 0 dropped, "
    assert re.fullmatch(pattern + r"0 incomplete \(average\)", last), err


@needs("add_udp_reader")
def test_demo_summary_waits_for_the_sender_to_count_the_stop_heap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stop heap ends the stream as soon as it arrives, which can be before the sender's thread
    counts it: the summary waits for that thread, so it does not miss the stop heap."""
    send_heap = demo.DemoSender._send_heap

    def slow_after_the_stop_heap(self: demo.DemoSender, sock: socket.socket, heap: list[bytes]) -> None:
        send_heap(self, sock, heap)
        if self.heaps_sent == self.n_heaps:  # the stop heap (the last), not counted yet
            time.sleep(0.3)

    monkeypatch.setattr(demo.DemoSender, "_send_heap", slow_after_the_stop_heap)
    assert recv.main(["--demo", "--demo-heaps", "2", "--demo-rate", "50", "-q"]) == 0
    assert "Demo: 2 data heaps and a stop heap sent, 2 received." in capsys.readouterr().out


@needs("add_udp_reader")
def test_demo_live_line_on_terminal() -> None:
    """On a terminal the rate line is rewritten in place (carriage return, erase line)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spead2.tools.recv", "--demo", "--demo-heaps", "12", "--demo-rate", "20",
             "-q", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=follower, text=True,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, out + err
    assert err.count("\r\x1b[K") >= 3, repr(err)
    assert err.rstrip().endswith("0 incomplete (average)")
    assert summary_value(out, "heaps") == 12


@needs("add_udp_reader")
@pytest.mark.parametrize("extra", [["--max-heaps", "3"], ["--threads", "1", "--max-heaps", "3"]])
def test_max_heaps(extra: list[str]) -> None:
    """--max-heaps stops early (--threads: blocking streams consumed through their fd)."""
    tool = ToolProcess("spead2.tools.recv", ["--demo", "--demo-heaps", "30", "--demo-rate", "50", *extra])
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert "heap 3: " in out and "heap 4: " not in out
    assert 3 <= summary_value(out, "heaps") <= 30


@needs("add_udp_reader")
def test_udp_until_ctrl_c() -> None:
    """A stream without a stop heap: Ctrl-C stops it and the summary still comes out."""
    port = free_port()
    tool = ToolProcess("spead2.tools.recv", ["-q", "--no-uvloop", f"127.0.0.1:{port}"])
    tool.wait_for_stderr("receiving from udp 127.0.0.1:")
    demo.DemoSender(port, n_heaps=4, rate=100, stop=False).run()
    time.sleep(0.3)
    tool.proc.send_signal(signal.SIGINT)
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert "Stopped by signal." in out
    assert summary_value(out, "heaps") == 4


@needs("add_udp_reader")
def test_two_udp_sources() -> None:
    ports = [free_port(), free_port()]
    tool = ToolProcess("spead2.tools.recv", [f"127.0.0.1:{p}" for p in ports])
    tool.wait_for_stderr("receiving from")
    for port in ports:
        demo.DemoSender(port, n_heaps=2, rate=100).run()
    status, out, err = tool.finish()
    assert status == 0, out + err
    for port in ports:
        assert f"[127.0.0.1:{port}] heap 2: " in out
    assert re.search(r"^heaps\s+2\s+2$", out, re.MULTILINE), out


@needs("add_udp_reader")
def test_udp_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    tool = ToolProcess("spead2.tools.recv", ["-q", f"[::1]:{port}"])
    tool.wait_for_stderr(f"receiving from udp [::1]:{port}")
    demo.DemoSender(port, "::1", n_heaps=3, rate=100).run()
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert summary_value(out, "heaps") == 3


@needs("add_tcp_reader")
def test_tcp() -> None:
    port = free_port(socket.SOCK_STREAM)
    tool = ToolProcess("spead2.tools.recv", ["--tcp", f"127.0.0.1:{port}"])
    tool.wait_for_stderr(f"receiving from tcp 127.0.0.1:{port}")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(b"".join(demo.packets(4, stop=False)))
    status, out, err = tool.finish()
    assert status == 0, out + err
    assert "heap 4: " in out
    assert summary_value(out, "heaps") == 4


@needs("add_udp_pcap_file_reader")
def test_pcap_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.pcap"
    write_pcap(path, demo.packets(5), dst_port=7148)
    proc = run_tool("spead2.tools.recv", "--values", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "  label        = 'demo heap 4'" in proc.stdout
    assert summary_value(proc.stdout, "heaps") == 5


@needs("add_udp_pcap_file_reader")
def test_pcap_file_with_filter(tmp_path: Path) -> None:
    """Two streams interleaved in one capture; the filter keeps one of them."""
    pytest.importorskip("pcapy")
    path = tmp_path / "two.pcap"
    a = demo.packets(3, stop=False)
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for i, packet in enumerate(a):
            writer.write(packet, (bytes([127, 0, 0, 1]), 5000), (bytes([127, 0, 0, 1]), 7148), i)
            writer.write(b"\x00" * 64, (bytes([127, 0, 0, 1]), 5000), (bytes([127, 0, 0, 1]), 7149), i)
    proc = run_tool("spead2.tools.recv", "-q", "--pcap-filter", "udp dst port 7148", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_value(proc.stdout, "heaps") == 3
    assert summary_value(proc.stdout, "packets_dropped") == 0
    proc = run_tool("spead2.tools.recv", "-q", str(path))
    assert summary_value(proc.stdout, "packets_dropped") == len(a)
    proc = run_tool("spead2.tools.recv", "--pcap-filter", "udp dst port nonsense", str(path))
    assert_one_line_error(proc, 1, "cannot receive from pcap")


def test_console_scripts_installed() -> None:
    """The entry points of pyproject.toml, when the package is installed (pip install -e .)."""
    bindir = Path(sys.executable).parent
    missing = [
        name for name in ("spead2_recv", "spead2_capture", "spead2_bench") if not (bindir / name).exists()
    ]
    if missing:
        pytest.skip(f"console scripts not installed in {bindir}: {missing}")
    for name in ("spead2_recv", "spead2_capture", "spead2_bench", "spead2_recv.py"):
        if not (bindir / name).exists():
            pytest.skip(f"{name} not installed in {bindir} (pip install -e . again)")
        proc = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: {name}")
