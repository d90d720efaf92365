"""SIGINT and SIGTERM end `maest serve` and `maest tag` the same way: cleanup, exit 130 / 143 (issue 18 item 12).

Real subprocesses (``python -m maest.cli``, the console entry point's code) on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval_data import tiny_model
from maest.cli.signals import exit_status

SRC = str(Path(__file__).resolve().parents[2] / "src")
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


def test_exit_status_convention():
    assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(tmp), "GRADIO_ANALYTICS_ENABLED": "False",
            "OMP_NUM_THREADS": "1"}


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the app never answered on its port")


def test_serve_cleans_up_and_exits_by_sigterm(tmp_path, signum=signal.SIGTERM):
    """Ctrl-C always cleaned up; SIGTERM (systemd, docker stop) now takes the same path (one server start: ~25 s)."""
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from app_data import free_port

    model, tmp, port = tiny_model(tmp_path / "tiny"), tmp_path / "tmp", free_port()
    server = subprocess.Popen([sys.executable, "-m", "maest.cli", "serve", "-m", str(model), "--port", str(port),
                               "--device", "cpu"], env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/", server)
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        song, bad = tmp_path / "song.wav", tmp_path / "bad.mp3"
        sf.write(song, 0.1 * np.sin(np.arange(32000) / 7).astype(np.float32), 16000)
        bad.write_bytes(b"not audio " * 300)
        client.predict(gradio_client.handle_file(str(song)), api_name="/tag_upload")
        with pytest.raises(Exception, match="Cannot read bad.mp3 as audio"):
            client.predict(gradio_client.handle_file(str(bad)), api_name="/tag_upload")
        results = list(tmp.glob("maest-app-*/*/*.png"))
        assert results, "the request's timeline was not written under TMPDIR"
        server.send_signal(signum)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == exit_status(signum), err
    assert not list(tmp.glob("maest-app-*")), "result files were left behind"
    assert "Traceback" not in err and "share=True" not in err + out
    # a user's mistake is one line in the terminal
    assert sum("Cannot read bad.mp3 as audio" in line for line in err.splitlines()) == 1


@pytest.mark.parametrize("signum", SIGNALS)
def test_tag_stops_on_the_signal(tmp_path, signum):
    model, music = tiny_model(tmp_path / "tiny"), tmp_path / "music"
    music.mkdir()
    tone = 0.1 * np.sin(np.arange(8000) / 5).astype(np.float32)
    for i in range(400):
        sf.write(music / f"t{i:03d}.wav", tone, 16000)
    tagger = subprocess.Popen([sys.executable, "-m", "maest.cli", "tag", str(music), "-m", str(model), "--device",
                               "cpu", "--format", "tsv"], env=_env(tmp_path / "tmp"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = tagger.stdout.readline()  # the first track is tagged: the run is under way
        assert first.startswith(str(music)), tagger.stderr.read()
        tagger.send_signal(signum)
        out, err = tagger.communicate(timeout=60)
    finally:
        if tagger.poll() is None:
            tagger.kill()
    assert len(out.splitlines()) < 400 * 5 - 1, "the run finished before the signal: use more tracks"
    assert tagger.returncode == exit_status(signum), err
    assert "Traceback" not in err
