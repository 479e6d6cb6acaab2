"""The documentation: Sphinx builds it with warnings as errors, its doctests pass, and every
example program it includes runs (receiving the demo stream over UDP on 127.0.0.1).  The README's
Quickstart has exactly the two commands it promises."""

from __future__ import annotations

import ast
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_tools_recv import TIMEOUT, free_port, needs

from spead2.tools import demo

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
N_HEAPS = 5

pytest.importorskip("sphinx")


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
         "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_html_build(tmp_path: Path) -> None:
    proc = sphinx("html", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    for page in ("index", "installation", "quickstart", "recv", "send", "asyncio", "bridges", "tools",
                 "monitoring", "performance", "design", "differences"):  # fmt: skip
        assert (tmp_path / "html" / f"{page}.html").exists(), page


def test_doctests(tmp_path: Path) -> None:
    proc = sphinx("doctest", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "doctest" / "output.txt").read_text()
    match = re.search(r"^ +(\d+) tests\n +0 failures in tests$", report, re.MULTILINE)
    assert match is not None and int(match[1]) >= 20, report


def test_every_example_is_in_the_docs() -> None:
    """The examples the docs show are the ones tested below."""
    included = set()
    for page in DOCS.glob("*.rst"):
        included |= set(re.findall(r"literalinclude:: examples/(\w+\.py)", page.read_text()))
    assert included == {path.name for path in EXAMPLES.glob("*.py")}


def udp_bound(port: int) -> bool:
    tables = [Path("/proc/net/udp"), Path("/proc/net/udp6")]
    if not tables[0].exists():  # pragma: no cover - not Linux: give the program time to start
        time.sleep(3)
        return True
    for table in tables:
        if table.exists():
            for line in table.read_text().splitlines()[1:]:
                if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def run_example(python: str, name: str, extra_ports: int = 0, env: dict[str, str] | None = None) -> str:
    """Runs docs/examples/NAME with a free UDP port, sends it the demo stream once it has bound
    the port, and returns its output."""
    port = free_port()
    args = [str(port)] + [str(free_port(socket.SOCK_STREAM)) for _ in range(extra_ports)]
    proc = subprocess.Popen(
        [python, str(EXAMPLES / name), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=str(ROOT) if env is None else tempfile.gettempdir(), env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not udp_bound(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                out, _ = proc.communicate(timeout=TIMEOUT)
                raise AssertionError(f"{name} did not bind UDP port {port}: {out}")
            time.sleep(0.02)
        demo.DemoSender(port, n_heaps=N_HEAPS, rate=100).run()
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    return out


EXPECTED = {
    "asyncio_receive.py": [r"^heap 5: image = uint16\[512, 1024\]$", r"^heap 1: label = 'demo heap 0'$",
                           rf"^done: {N_HEAPS} heaps$"],
    "thread_to_asyncio.py": [r"^heap 1: timestamp 1000000, 5 items$", r"^heap 5: timestamp 1016384, 6 items$",
                             r"^done$"],
    "tornado_service.py": [r"^heap 5: 5 heaps so far$", rf"^done: {N_HEAPS} heaps, label 'demo heap 4'$"],
    "twisted_asyncio.py": [r"^first heap 1: \['frequency', 'image', 'label', 'spectrum', 'timestamp', "
                           r"'visibilities'\]$", r"^heap 5: 6 items$", r"^done$"],
    "twisted_reactor.py": [r"^heap 1: 5 items$", rf"^done: {N_HEAPS} heaps \(\w+Reactor\)$"],
    "prometheus_export.py": [rf'^spead2_recv_heaps_total{{stream="beam0"}} {N_HEAPS}\.0$',
                             r'^spead2_recv_packets_total{stream="beam0"} \d+\.0$'],
}  # fmt: skip
NEEDS = {"tornado_service.py": "tornado", "twisted_asyncio.py": "twisted", "twisted_reactor.py": "twisted",
         "prometheus_export.py": "prometheus_client"}  # fmt: skip
EXTRA_PORTS = {"tornado_service.py": 1, "prometheus_export.py": 1}


@needs("add_udp_reader")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example(name: str) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    out = run_example(sys.executable, name, EXTRA_PORTS.get(name, 0))
    for pattern in EXPECTED[name]:
        assert re.search(pattern, out, re.MULTILINE), (pattern, out)


@pytest.mark.interop
@needs("add_udp_reader")
@pytest.mark.parametrize("name", ["asyncio_receive.py", "thread_to_asyncio.py"])
def test_example_runs_on_reference(reference: Path, name: str) -> None:
    """The examples that use only the reference's API run unchanged on the reference spead2."""
    import refvenv

    out = run_example(str(reference), name, env=refvenv.clean_env())  # no PYTHONPATH: the reference's spead2
    for pattern in EXPECTED[name]:
        assert re.search(pattern, out, re.MULTILINE), (pattern, out)


def test_readme_quickstart() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [
        line for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL) for line in block.splitlines()
    ]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/spead2_recv --demo",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_readme_python_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) >= 5
    for block in blocks:
        # snippets may await at top level (they stand for code inside a coroutine)
        compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
