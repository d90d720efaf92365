"""`maest serve` from the command line: a real server process on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("gradio")

from app_data import free_port  # noqa: E402
from eval_data import tiny_model  # noqa: E402


def test_serve_starts_the_app_and_reports_a_missing_index(tmp_path):
    model = tiny_model(tmp_path / "tiny")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "maest.cli", "serve", "-m", str(model), "--port", str(port),
               "--index", str(tmp_path / "no-index"), "--device", "cpu"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None and "gradio" in page.lower(), "the app never answered on its port"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"No index at {tmp_path / 'no-index'}" in output


def test_serve_refuses_a_bad_port():
    result = subprocess.run([sys.executable, "-m", "maest.cli", "serve", "--port", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "--port" in result.stderr
