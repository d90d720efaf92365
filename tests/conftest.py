"""Shared fixtures: the real test files in ../shared/data (tests skip cleanly without them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Local Ray clusters started by the tests listen on 127.0.0.1 only (Ray otherwise binds to the
# machine's network address); read by Ray when it is imported, so set before any test imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# The default precision is bf16 on CPUs with AMX or AVX512-BF16 (maest.precision): the suite pins
# the CPU decision to fp32 so its reference comparisons hold on every machine; tests of the
# decision itself (tests/test_precision_auto.py) unset it.
os.environ.setdefault("MAEST_CPU_BF16", "0")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GOOD_CLIPS = [
    "ambience_12s_16k_mono.wav",
    "imperialarmy_20s_22k_mono.mp3",
    "menu_0.5s_44k_stereo.wav",
    "techbattle_30s_44k_stereo.ogg",
    "temple_8s_48k_stereo.flac",
]
BAD_CLIPS = ["empty.wav", "not_audio.mp3", "truncated_techbattle.ogg"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project root; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def audio_dir(shared_data: Path) -> Path:
    return shared_data / "audio"


@pytest.fixture(scope="session")
def splits_dir(shared_data: Path) -> Path:
    """The real dataset split files (MTG-Jamendo split-0, MTT 12-1-3) in ../shared/data/splits."""
    path = shared_data / "splits"
    if not path.is_dir():
        pytest.skip("../shared/data/splits is not available")
    return path


@pytest.fixture
def one_thread():
    """Tiny models run fastest (and steadiest on a busy machine) on one torch thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
