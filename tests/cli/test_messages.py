"""What a user reads when something is wrong (issue 18 item 16): one clean line, no library paragraphs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maest.audio import AudioDecodeError, load

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_unreachable_hub_gives_one_clean_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "MAEST_HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens on port 9: huggingface_hub's real failure
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run([sys.executable, "-m", "maest.cli", "tag", str(tmp_path / "x.wav")], env=env,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: CheckpointError: could not download mtg-upf/discogs-maest-30s-pw-129e")
    assert "not reachable" in lines[0] and "MAEST_HOME" in lines[0]
    assert ".." not in lines[0] and "An error happened" not in lines[0] and "Please check" not in lines[0]


def test_offline_hub_message_has_no_double_period(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "MAEST_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "maest.cli", "tag", str(tmp_path / "x.wav")], env=env,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and ".." not in lines[0] and "not reachable" in lines[0]


@pytest.mark.parametrize("suffix", [".mp3", ".wav", ".flac", ".ogg"])
def test_text_named_as_audio_is_reported_as_not_audio(tmp_path, suffix):
    garbage = tmp_path / f"song{suffix}"
    garbage.write_bytes(b"this is not audio at all " * 400)
    with pytest.raises(AudioDecodeError) as raised:
        load(garbage)
    reason = raised.value.reason
    assert "pipe" not in reason and "does not exist" not in reason and "regular file" not in reason
    assert str(garbage) not in reason  # the message names the file once, in front
    assert any(text in reason for text in ("not a readable audio file", "zero audio samples", "no Ogg page"))


def test_real_not_audio_mp3(audio_dir):
    with pytest.raises(AudioDecodeError) as raised:
        load(audio_dir / "not_audio.mp3")
    assert raised.value.reason.startswith("not a readable audio file (soundfile: format not recognised; ffmpeg: ")
