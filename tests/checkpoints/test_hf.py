"""maest vs transformers' ASTForAudioClassification on tiny random configs, both directions."""

from __future__ import annotations

import re

import pytest
import torch

from maest.checkpoints import hf, load_checkpoint
from maest.checkpoints.posenc import split_separable
from maest.configs import MaestConfig
from maest.model import Maest

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
DEPTH, WIDTH, HEADS, CLASSES, MAX_LENGTH = 2, 64, 4, 5, 106  # 10 time columns, 9 frequency rows
LABELS = [f"Genre---Style {i}" for i in range(CLASSES)]


def ast_model(separable: bool = True) -> "transformers.ASTForAudioClassification":
    """A tiny random AST; every parameter (norms included) is random so nothing cancels out."""
    config = transformers.ASTConfig(
        num_mel_bins=96, max_length=MAX_LENGTH, frequency_stride=10, time_stride=10, patch_size=16,
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
        layer_norm_eps=1e-6, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = transformers.ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn_like(param) * (0.5 if "layernorm" in name else 0.1))
            if "layernorm.weight" in name or "layernorm_" in name and name.endswith("weight"):
                param.add_(1.0)
        if separable:
            table = model.audio_spectrogram_transformer.embeddings.position_embeddings
            freq, time = torch.randn(9, 1, WIDTH), torch.randn(1, 10, WIDTH)
            table[0, 2:] = (freq + time).reshape(90, WIDTH)
    return model


def mel_batch(batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 96, MAX_LENGTH)


def assert_same_outputs(ours: Maest, theirs, mel: torch.Tensor) -> None:
    """Every hidden state and the logits agree; AST takes (batch, time, mel)."""
    ours.eval()
    with torch.no_grad():
        reference = theirs(mel.transpose(1, 2), output_hidden_states=True)
        assert len(reference.hidden_states) == ours.config.depth + 1
        for blocks, hidden in enumerate(reference.hidden_states):
            torch.testing.assert_close(ours.forward_features(mel, blocks=blocks), hidden, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours(mel), reference.logits, atol=ATOL, rtol=0)


def to_v4(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5.x key names -> the 4.x names of the published repositories."""
    renames = [
        (r"\.layers\.(\d+)\.", r".encoder.layer.\1."),
        (r"attention\.q_proj", "attention.attention.query"),
        (r"attention\.k_proj", "attention.attention.key"),
        (r"attention\.v_proj", "attention.attention.value"),
        (r"attention\.o_proj", "attention.output.dense"),
        (r"mlp\.fc1", "intermediate.dense"),
        (r"mlp\.fc2", "output.dense"),
    ]
    out = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def test_hf_folder_to_maest_matches_ast(tmp_path):
    theirs = ast_model()
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    assert not ours.has_grid_pos_embed
    assert ours.config.time_grid == 10 and ours.config.labels == LABELS
    assert_same_outputs(ours, theirs, mel_batch())


def test_v4_and_v5_key_names_give_the_same_weights():
    theirs = ast_model()
    config = hf.config_from_hf(theirs.config.to_dict())
    v5 = theirs.state_dict()
    assert hf.key_style(v5) == "v5" and hf.key_style(to_v4(v5)) == "v4"
    from_v5, from_v4 = hf.hf_to_maest(v5, config), hf.hf_to_maest(to_v4(v5), config)
    assert from_v5.keys() == from_v4.keys()
    for key in from_v5:
        torch.testing.assert_close(from_v5[key], from_v4[key], atol=0, rtol=0)


def test_v4_pytorch_model_bin_folder_loads(tmp_path):
    theirs = ast_model()
    theirs.config.save_pretrained(tmp_path)
    torch.save(to_v4(theirs.state_dict()), tmp_path / "pytorch_model.bin")
    assert_same_outputs(load_checkpoint(tmp_path), theirs, mel_batch())


@pytest.mark.parametrize("key_names", ["v4", "v5"])
def test_export_hf_loads_in_transformers_and_matches(tmp_path, key_names):
    torch.manual_seed(2)
    config = MaestConfig(depth=DEPTH, width=WIDTH, heads=HEADS, segment_frames=100, num_classes=CLASSES,
                         labels=LABELS, head_norm_eps=1e-6)  # AST's head norm uses layer_norm_eps
    ours = Maest(config).eval()
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    hf.export_hf(ours, tmp_path, key_names=key_names)
    theirs = transformers.ASTForAudioClassification.from_pretrained(tmp_path).eval()
    assert theirs.config.max_length == MAX_LENGTH
    assert [theirs.config.id2label[i] for i in range(CLASSES)] == LABELS
    assert_same_outputs(ours, theirs, mel_batch())
    # ... and back: the separable encodings survive the flat table (up to the constant vector).
    back = load_checkpoint(tmp_path)
    torch.testing.assert_close(
        back.freq_new_pos_embed + back.time_new_pos_embed, ours.freq_new_pos_embed + ours.time_new_pos_embed,
        atol=1e-6, rtol=0,
    )
    assert_same_outputs(back, theirs, mel_batch())


def test_non_separable_table_falls_back_to_grid(tmp_path):
    theirs = ast_model(separable=False)
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    assert ours.has_grid_pos_embed
    assert_same_outputs(ours, theirs, mel_batch())
    hf.export_hf(ours, tmp_path / "again")
    again = transformers.ASTForAudioClassification.from_pretrained(tmp_path / "again")
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, atol=0, rtol=0)


def test_separable_split_reconstructs_the_table():
    torch.manual_seed(3)
    freq, time = torch.randn(1, WIDTH, 9, 1), torch.randn(1, WIDTH, 1, 10)
    got_freq, got_time = split_separable(freq + time)
    torch.testing.assert_close(got_freq + got_time, freq + time, atol=1e-6, rtol=0)
    # unique up to a constant vector: the differences between rows and between columns are exact
    torch.testing.assert_close(got_freq - got_freq[:, :, :1], freq - freq[:, :, :1], atol=1e-6, rtol=0)


def test_missing_or_extra_hf_keys_fail_loudly():
    theirs = ast_model()
    config = hf.config_from_hf(theirs.config.to_dict())
    state = theirs.state_dict()
    from maest.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="lacks"):
        hf.hf_to_maest({k: v for k, v in state.items() if "q_proj.bias" not in k}, config)
    with pytest.raises(CheckpointError, match="unexpected"):
        hf.hf_to_maest({**state, "audio_spectrogram_transformer.layers.7.mlp.fc1.weight": torch.zeros(1)}, config)
