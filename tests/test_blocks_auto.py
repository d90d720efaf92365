"""``--blocks`` default "auto" (issue 18 item 13): block 7, or the last block of a shallower model, the same in
embed, head fit, serve and index; an explicit block the model lacks says what to pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maest import plots
from maest.blocks import BlocksError, auto_blocks, parse_blocks, resolve_blocks
from maest.checkpoints import save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.inference import EmbedOptions, load_model
from maest.model import Maest


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 2-block model (the README's tiny training run is one) and a class tree of tones."""
    root = tmp_path_factory.mktemp("blocks")
    torch.manual_seed(0)
    checkpoint = save_native(Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=64,
                                               name="tiny")), root / "model")
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    for c, hz in enumerate((200, 900, 3000)):
        for i in range(4):
            path = root / "tree" / f"class{c}" / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t) + 0.02 * rng.normal(size=t.size)).astype(np.float32), 16000)
    return root, str(checkpoint), load_model(checkpoint, "cpu")


def test_the_rule():
    assert [auto_blocks(d) for d in (2, 7, 12)] == [2, 7, 7]
    assert resolve_blocks("auto", 2) == 2 and resolve_blocks("auto", 12) == 7 and resolve_blocks(None, 2) is None
    assert resolve_blocks("auto", None) == 7  # EffNet: blocks do not apply; outputs keep recording 7
    assert parse_blocks("AUTO") == "auto" and parse_blocks("5") == 5
    with pytest.raises(BlocksError, match=r"pass --blocks 1\.\.2 \(blocks=2 for its last block\), or leave --blocks out"):
        resolve_blocks(7, 2)
    with pytest.raises(BlocksError):
        parse_blocks("seven")


def test_embed_head_fit_serve_and_the_library_use_the_last_block_of_a_2_block_model(setup):
    root, checkpoint, pipeline = setup
    tree = root / "tree"
    result = CliRunner().invoke(app, ["embed", str(tree), "-o", str(root / "emb"), "--model", checkpoint,
                                      "--no-progress", "--decode-workers", "0"])
    assert result.exit_code == 0, result.output
    settings = json.loads((root / "emb" / "maest-embed.json").read_text())
    assert settings["blocks"] == 2
    embedded = np.load(root / "emb" / "class0" / "0.npy")
    np.testing.assert_allclose(embedded, pipeline.embed(tree / "class0" / "0.wav", blocks=2), atol=1e-5)
    np.testing.assert_allclose(pipeline.embed(tree / "class0" / "0.wav"), embedded, atol=1e-5)  # library default

    result = CliRunner().invoke(app, ["head", "fit", str(tree), "-o", str(root / "head"), "--model", checkpoint,
                                      "--no-progress", "--decode-workers", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((root / "head" / "head.json").read_text())["embedding"]["blocks"] == 2
    assert plots.embedding_blocks(pipeline) == 2  # what `maest serve` embeds with
    assert pipeline.resolved(EmbedOptions()).blocks == 2


def test_an_explicit_block_the_model_lacks_says_what_to_pass(setup):
    root, checkpoint, _ = setup
    for command in (["embed", str(root / "tree"), "-o", str(root / "emb7")], ["head", "fit", str(root / "tree"),
                                                                                "-o", str(root / "head7")]):
        result = CliRunner().invoke(app, [*command, "--model", checkpoint, "--blocks", "7", "--no-progress"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "pass --blocks 1..2" in result.output and "leave --blocks out" in result.output, result.output
    assert not (root / "emb7").exists()  # refused before the output folder is claimed
    result = CliRunner().invoke(app, ["embed", str(root / "tree"), "-o", str(root / "x"), "--blocks", "many"])
    assert result.exit_code == 2 and "'auto' or a block number" in result.output
