"""A run never reaches the network, native code included: the pipeline under strace.

The Python-level socket guard in conftest cannot see native libraries (onnxruntime's
telemetry uploader resolves its host with libc's getaddrinfo from a C++ thread), so this
runs the CLI and a library call (``pipeline.run``) in a child process under
``strace -f -e trace=network`` and reads every connect/send it made. Unix sockets and the
loopback are fine; anything else fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow

STRACE = shutil.which("strace") or "/usr/bin/strace"
# connect(7, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16)
# sendto(5, ..., {sa_family=AF_INET6, sin6_port=htons(53), ..., inet_pton(AF_INET6, "::1", &sin6_addr), ...}, 28)
CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\(")
INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"')


def outside_loopback(trace: str) -> list[str]:
    """The traced calls that address a network socket outside the loopback."""
    found = []
    for line in trace.splitlines():
        if not CALL.search(line) or "AF_INET" not in line:
            continue
        for v4, v6 in INET.findall(line):
            address = ipaddress.ip_address(v4 or v6)
            mapped = getattr(address, "ipv4_mapped", None)
            if not (address.is_loopback or (mapped is not None and mapped.is_loopback)):
                found.append(line.strip())
    return found


def test_outside_loopback_reads_strace_lines():
    lines = [
        '12 connect(7, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '12 connect(7, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '12 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        '12 sendto(5, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 1',
        '12 connect(5, {sa_family=AF_INET6, sin6_port=htons(80), inet_pton(AF_INET6, "::1", &sin6_addr)}, 28) = 0',
        "12 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 6",
    ]
    assert outside_loopback("\n".join(lines)) == [lines[0], lines[3]]


# The same run from the command line and from Python (a notebook's call): the library sets the
# offline policy itself, so neither needs the environment to say it.
HOW = {
    "cli": ["-m", "pipeline", "run"],
    "library": ["-c", "import sys, pipeline; pipeline.run(sys.argv[1])"],
}


@pytest.mark.skipif(not Path(STRACE).is_file(), reason="strace is not installed (Debian: apt-get install strace)")
@pytest.mark.parametrize("how", sorted(HOW))
def test_a_run_on_the_seed_pages_makes_no_network_call_outside_the_loopback(tmp_path, how):
    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    raw["output_dir"] = str(tmp_path / "out")
    raw["inputs"] = [str(SAMPLES / "*.txt")]
    config = tmp_path / "default.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    # The run must switch native telemetry off by itself: not inherited from this test process.
    env = {key: value for key, value in os.environ.items() if key not in ("ORT_DISABLE_TELEMETRY", "HF_HUB_OFFLINE")}
    env["HOME"] = str(tmp_path / "home")  # onnxruntime's event queue would land in ~/.cache/Microsoft
    trace = tmp_path / "trace.txt"
    result = subprocess.run(
        [STRACE, "-f", "-e", "trace=network", "-o", str(trace), sys.executable, *HOW[how], str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "default" / "index.html").is_file()
    assert outside_loopback(trace.read_text(encoding="utf-8")) == []
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()
