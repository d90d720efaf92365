"""The Ray cluster a maest run starts or joins: loopback only, a bounded failure for an unreachable
address, and SIGTERM/SIGINT ending the run as on the local engine (exit 143/130, no crash dump,
every Ray process gone)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distributed_data import write_clips
from maest.cli import app

pytest.importorskip("ray")
pytest.importorskip("ray.data")

TESTS = str(Path(__file__).resolve().parents[1])
SRC = str(Path(__file__).resolve().parents[2] / "src")
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::ffff:127\.\d+\.\d+\.\d+\]|\[::1\]):\d+$")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from eval_data import tiny_model

    return tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_cluster_fails_at_once_with_one_line(tmp_path, checkpoint):
    write_clips(tmp_path / "music", 1)
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["embed", str(tmp_path / "music"), "-o", str(tmp_path / "out"), "-m",
                                      str(checkpoint), "--engine", "ray", "--ray-address", address])
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: cannot reach the Ray cluster at {address} (Connection refused); start it (ray start --head) "
        "or check --ray-address"]


def descendants(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def listeners(pids: set[int]) -> list[tuple[str, str]]:
    """``(local address, process)`` of every TCP listener that one of ``pids`` holds (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            if int(pid) in pids:
                found.append((fields[3], name))
    return found


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_own_cluster_listens_on_loopback_only_and_a_signal_stops_it_cleanly(tmp_path, checkpoint, signum, status):
    root, out = tmp_path / "music", tmp_path / "out"
    write_clips(root, 160, seconds=(2.0,))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # maest itself must keep its cluster on loopback
    command = [sys.executable, "-m", "maest.cli", "embed", str(root), "-o", str(out), "-m", str(checkpoint),
               "--blocks", "2", "--engine", "ray", "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 150
    while not list(out.rglob("*.npy")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = descendants(process.pid)
    held = listeners(tree)
    assert process.poll() is None, "the run should still be going: " + process.communicate()[1][-2000:]
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert {name for _, name in held} >= {"gcs_server", "raylet"}, held
    assert all(LOOPBACK.match(address) for address, _ in held), held
    assert process.returncode == status, stderr[-3000:]
    assert "Traceback" not in stderr and "SIGTERM" not in stderr and "core dumped" not in stderr, stderr[-3000:]
    written = list(out.rglob("*.npy"))
    assert 0 < len(written) < 160 and not list(out.rglob("*.partial"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [p for p in tree if Path(f"/proc/{p}").exists()]:
        time.sleep(0.2)
    left = [p for p in tree if Path(f"/proc/{p}").exists()]
    assert not left, f"Ray processes still running after the run: {left}"
