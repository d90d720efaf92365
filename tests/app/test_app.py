"""The web app through its HTTP API (gradio_client against a real local server) and its service layer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from app_data import ExactIndex, NearestMeanHead, free_port, write_tracks  # noqa: E402
from eval_data import tiny_model  # noqa: E402

import maest  # noqa: E402
from maest.app.service import AppInputError, Collection, Tagger  # noqa: E402
from maest.app.ui import build_app  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    pipeline = maest.load_model(tiny_model(root / "tiny"), device="cpu")
    music = root / "music"
    tracks = write_tracks(music)
    keys = [p.relative_to(music).as_posix() for p in tracks]
    embeddings = np.stack([pipeline.embed(p, blocks=2) for p in tracks])
    index = ExactIndex(keys, embeddings)
    head = NearestMeanHead(["low", "mid", "high"], embeddings.reshape(3, 2, -1).mean(axis=1))
    return pipeline, music, tracks, index, head


@pytest.fixture(scope="module")
def client(setup):
    pipeline, music, _, index, head = setup
    app = build_app(pipeline, index, head, max_upload_mb=1, audio_root=music)
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield gradio_client.Client(app.local_url, verbose=False, download_files=False)
    finally:
        app.close()


def test_tag_upload_returns_styles_timeline_head_and_embedding(setup, client, tmp_path):
    pipeline, _, tracks, _, head = setup
    upload = tmp_path / "upload me.wav"
    shutil.copy(tracks[0], upload)
    status, styles, table, timeline, head_table, embedding = client.predict(
        gradio_client.handle_file(str(upload)), api_name="/tag_upload")
    expected = pipeline.tag(tracks[0], top_k=4)
    assert [row[1] for row in table["data"]] == [label for label, _ in expected]
    np.testing.assert_allclose([row[2] for row in table["data"]], [p for _, p in expected], atol=1e-4)
    assert styles["label"] == expected[0][0]
    assert "upload me.wav" in status
    assert head_table["data"][0][0] == "low" and head_table["data"][0][2] == "yes"  # its own class, on
    assert Path(timeline["path"]).suffix == ".png" and Path(embedding["path"]).suffix == ".npy"
    assert upload.exists()  # the client's file is untouched; the server's copy is what gets removed
    again = client.predict(gradio_client.handle_file(str(upload)), api_name="/tag_upload")  # same file again
    assert again[2]["data"] == table["data"]


def test_tag_path_equals_upload(setup, client):
    pipeline, _, tracks, _, _ = setup
    _, _, table, _, _, _ = client.predict(str(tracks[2]), api_name="/tag_path")
    assert [row[1] for row in table["data"]] == [label for label, _ in pipeline.tag(tracks[2], top_k=4)]


def test_bad_upload_gives_a_clear_message(client, tmp_path):
    garbage = tmp_path / "song.mp3"
    garbage.write_bytes(b"this is not audio at all " * 400)
    with pytest.raises(Exception) as raised:
        client.predict(gradio_client.handle_file(str(garbage)), api_name="/tag_upload")
    message = str(raised.value)
    assert "Cannot read song.mp3 as audio" in message and "Traceback" not in message


def test_real_bad_file_gives_a_clear_message(client, audio_dir):
    with pytest.raises(Exception, match="Cannot read not_audio.mp3 as audio"):
        client.predict(gradio_client.handle_file(str(audio_dir / "not_audio.mp3")), api_name="/tag_upload")


def test_oversized_upload_gives_a_clear_message(client, tmp_path):
    big = tmp_path / "big.wav"
    import soundfile as sf

    sf.write(big, np.zeros(16000 * 40, np.float32), 16000)  # 1.2 MB > the 1 MB limit
    with pytest.raises(Exception, match=r"big.wav is 1.2 MB; this app takes files up to 1 MB"):
        client.predict(gradio_client.handle_file(str(big)), api_name="/tag_upload")


def test_collection_search_open_and_neighbours(setup, client):
    _, music, _, index, _ = setup
    choices, note = client.predict("MID", api_name="/find")
    assert note == "2 matches"
    status, audio, styles, neighbours, head_table = client.predict("mid/mid_0.wav", api_name="/open_track")
    assert [row[1] for row in neighbours["data"]] == [key for key, _ in index.search("mid/mid_0.wav", 6)[1:]]
    assert neighbours["data"][0][1] == "mid/mid_1.wav"  # its own tone is the nearest
    assert audio["path"].endswith("mid_0.wav") and styles["label"]
    assert head_table["data"][0][0] == "mid"


def test_missing_index_message(setup, tmp_path):
    from maest.app.server import load_index

    index, message = load_index(tmp_path / "nowhere")
    assert index is None and "No index at" in message and "maest index build" in message


def test_upload_is_processed_in_a_private_folder_and_removed(setup, tmp_path):
    pipeline, _, tracks, _, _ = setup
    upload = tmp_path / "gradio-cache" / "a.wav"
    upload.parent.mkdir()
    shutil.copy(tracks[1], upload)
    tagger = Tagger(pipeline, max_upload_mb=5, output_dir=tmp_path / "out")
    report = tagger.tag(upload, uploaded=True)
    assert not upload.exists()  # moved into a temporary folder that is gone now
    assert report.timeline_png.is_file() and np.load(report.embedding_npy).shape == (96,)
    picked = tagger.tag(tracks[1], uploaded=False)
    assert tracks[1].exists() and picked.styles == report.styles  # a picked path is never moved
    with pytest.raises(AppInputError, match="Cannot tag this path"):  # one neutral message (issue 18 item 11)
        tagger.tag(tmp_path / "missing.wav", uploaded=False)


@pytest.mark.parametrize("name", ["empty.wav", "not_audio.mp3", "truncated_techbattle.ogg"])
def test_real_bad_files_tag_or_give_a_clear_message(setup, audio_dir, tmp_path, name):
    tagger = Tagger(setup[0], max_upload_mb=5, output_dir=tmp_path / "out")
    upload = tmp_path / "uploads" / name  # an upload: the specific reason (a typed path gets one neutral message)
    upload.parent.mkdir()
    shutil.copy(audio_dir / name, upload)
    try:
        report = tagger.tag(upload, uploaded=True)
    except AppInputError as error:
        assert str(error).startswith(f"Cannot read {name} as audio (") and str(tmp_path) not in str(error)
    else:  # a truncated file decodes up to where it breaks
        assert report.styles and report.duration > 0


def test_collection_resolves_embedding_keys_to_audio(setup):
    pipeline, music, tracks, index, _ = setup
    collection = Collection(index, pipeline, audio_root=music)
    assert collection.resolve("low/low_0.wav.npy") == music / "low" / "low_0.wav"
    assert collection.resolve("low/low_0.npy") == music / "low" / "low_0.wav"
    view = Collection(index, pipeline).open("low/low_0.wav")  # no audio root: neighbours, and a note
    assert view.audio is None and "--audio-root" in view.note and len(view.neighbours) == 5


def test_serve_binds_locally_and_warns_for_other_hosts(setup, tmp_path, capsys):
    from maest.app import server

    pipeline = setup[0]
    port = free_port()
    app = server.serve(pipeline, index_dir=tmp_path / "no-index", port=port, max_upload_mb=3, block=False)
    try:
        assert app.local_url.startswith(f"http://127.0.0.1:{port}") and app.max_file_size == 3 * 1024 * 1024
        texts = [c.get("props", {}).get("value") for c in app.config["components"]]
        assert any(isinstance(t, str) and "No index at" in t for t in texts)  # shown in the Collection tab
    finally:
        app.close()
    err = capsys.readouterr().err
    assert "No index at" in err and "no authentication" not in err  # 127.0.0.1: no warning

    calls = []

    class Recorder:
        def launch(self, **kwargs):
            calls.append(kwargs)

    server.launch(Recorder(), host="0.0.0.0", port=1234, block=False)
    assert calls[0]["server_name"] == "0.0.0.0" and calls[0]["share"] is False
    assert "no authentication" in capsys.readouterr().err


def test_a_fitted_head_is_loaded_checked_and_read_with_its_own_embedding_spec(setup, tmp_path):
    from maest.app import server
    from maest.heads import HeadMismatchError, fit_head

    pipeline, music, tracks, _, _ = setup
    head_dir = tmp_path / "head"
    fit_head(music, head_dir, model=pipeline, blocks=1, tokens=("cls",), validation=0.5, progress=False)
    head = server.load_head(head_dir)
    assert head.spec.blocks == 1 and sorted(head.labels) == ["high", "low", "mid"]

    report = Tagger(pipeline, head, output_dir=tmp_path / "out").tag(tracks[0], uploaded=False)
    expected = head.predict(pipeline.embed(tracks[0], blocks=1, tokens=("cls",))[None])[0]
    got = {label: probability for label, probability, _ in report.head_rows}
    assert np.allclose([got[label] for label in head.labels], expected, atol=1e-6)
    assert sum(on for _, _, on in report.head_rows) == 1  # single-label: argmax, not a 0.5 threshold

    other = maest.load_model(tiny_model(tmp_path / "other", seed=1), device="cpu")
    with pytest.raises(HeadMismatchError):
        server.serve(other, head_dir=head_dir, port=free_port(), block=False)
