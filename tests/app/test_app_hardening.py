"""The web app against a hostile visitor (issue 18 items 9-11, 16): a real server on 127.0.0.1."""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from app_data import ExactIndex, free_port, write_tracks  # noqa: E402
from eval_data import tiny_model  # noqa: E402

import maest  # noqa: E402
from maest.app.service import AppInputError, Tagger  # noqa: E402
from maest.app.ui import build_app  # noqa: E402


def silent_flac(path: Path, minutes: int) -> Path:
    """Hours of silence in a few hundred KB: passes any size limit, costs minutes to decode and tag."""
    block = np.zeros(8000 * 60, np.int16)
    with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_16", format="FLAC") as f:
        for _ in range(minutes):
            f.write(block)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An app over an index of ``music/``, which also holds a secret and an audio file not in the index."""
    root = tmp_path_factory.mktemp("hostile")
    pipeline = maest.load_model(tiny_model(root / "tiny"), device="cpu")
    music = root / "music"
    tracks = write_tracks(music, per_tone=1, seconds=2.0)
    (music / "secret.txt").write_text("the owner's secret")
    shutil.copy(tracks[0], music / "not-indexed.wav")
    keys = [p.relative_to(music).as_posix() for p in tracks]
    index = ExactIndex(keys, np.stack([pipeline.embed(p, blocks=2) for p in tracks]))
    app = build_app(pipeline, index, max_upload_mb=1, audio_root=music)
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url.rstrip("/"), music, tracks, gradio_client.Client(app.local_url, verbose=False,
                                                                            download_files=False)
    finally:
        app.close()


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_only_the_opened_tracks_audio_is_served(served):
    url, music, tracks, client = served
    _, audio, *_ = client.predict("low/low_0.wav", api_name="/open_track")
    status, body = http_get(audio["url"])
    assert status == 200 and body == tracks[0].read_bytes()  # the indexed track plays
    for other in ("secret.txt", "not-indexed.wav", "low/low_0.wav", "mid/mid_0.wav"):
        status, body = http_get(f"{url}/gradio_api/file={music / other}")
        assert status in (403, 404) and b"secret" not in body, (other, status, body[:40])
    assert not audio["path"].startswith(str(music))  # from the app's private folder, not the audio root


def test_typed_paths_all_get_the_same_neutral_message(served, tmp_path):
    _, music, tracks, client = served
    long_track = silent_flac(tmp_path / "long.flac", minutes=40)
    messages = set()
    for path in (tmp_path / "missing.wav", music / "secret.txt", music, tmp_path / "..", long_track,
                 "/proc/self/environ"):
        with pytest.raises(Exception) as raised:
            client.predict(str(path), api_name="/tag_path")
        messages.add(str(raised.value))
    assert len(messages) == 1, messages  # nothing tells a visitor which paths exist
    (message,) = messages
    assert "Cannot tag this path" in message and str(tmp_path) not in message and "secret" not in message
    _, _, table, *_ = client.predict(str(tracks[1]), api_name="/tag_path")  # a good path still tags
    assert table["data"]


def test_upload_errors_show_no_server_paths(served, tmp_path):
    *_, client = served
    garbage = tmp_path / "song.mp3"
    garbage.write_bytes(b"this is not audio at all " * 400)
    with pytest.raises(Exception) as raised:
        client.predict(gradio_client.handle_file(str(garbage)), api_name="/tag_upload")
    message = str(raised.value)
    assert "Cannot read song.mp3 as audio (" in message
    assert "/tmp" not in message and "maest-upload" not in message and "gradio" not in message.lower()
    assert "possibly a pipe" not in message


def test_a_long_upload_is_refused_from_its_header_before_decoding(served, tmp_path):
    *_, client = served
    three_hours = silent_flac(tmp_path / "three hours.flac", minutes=180)
    assert three_hours.stat().st_size < 1024 * 1024  # under the 1 MB size limit
    started = time.monotonic()
    with pytest.raises(Exception, match=r"three hours.flac is 180.0 minutes long; this app takes tracks up to 30 "
                                        r"minutes \(start it with a larger --max-minutes"):
        client.predict(gradio_client.handle_file(str(three_hours)), api_name="/tag_upload")
    assert time.monotonic() - started < 20  # decoding and tagging it would take minutes


def test_length_limit_is_an_option(tmp_path):
    pipeline = maest.load_model(tiny_model(tmp_path / "tiny"), device="cpu")
    ten_seconds = tmp_path / "ten.wav"
    sf.write(ten_seconds, np.zeros(160000, np.float32), 16000)
    upload = tmp_path / "upload" / "ten.wav"
    upload.parent.mkdir()
    shutil.copy(ten_seconds, upload)
    tagger = Tagger(pipeline, max_minutes=0.1, output_dir=tmp_path / "out")
    with pytest.raises(AppInputError, match=r"ten.wav is 0.2 minutes long; this app takes tracks up to 0.1 minutes"):
        tagger.tag(upload, uploaded=True)
    assert Tagger(pipeline, max_minutes=0.2, output_dir=tmp_path / "out").tag(ten_seconds, uploaded=False).styles
