"""The transformer itself: size, early exit, patchout, time-encoding crop, token pooling."""

from __future__ import annotations

import pytest
import torch

from maest.configs import MaestConfig
from maest.registry import architecture
from maest.model import InputTooLongError, Maest, pool_tokens

WIDTH = 64


def tiny(seed: int = 0, **overrides) -> Maest:
    torch.manual_seed(seed)
    values = dict(depth=3, width=WIDTH, heads=4, segment_frames=100, num_classes=5)  # 9 x 10 grid
    values.update(overrides)
    return Maest(MaestConfig(**values)).eval()


def manual_tokens(model: Maest, mel: torch.Tensor, rows: list[int], columns: list[int]) -> torch.Tensor:
    """The token sequence computed by hand from the parameters, keeping only ``rows`` x ``columns``."""
    x = model.patch_embed.proj(mel.unsqueeze(1))
    present = x.shape[-1]
    x = x + model.freq_new_pos_embed + model.time_new_pos_embed[..., :present]  # crop, not interpolate
    x = x[:, :, rows][:, :, :, columns]
    x = x.flatten(2).transpose(1, 2)
    batch = x.shape[0]
    cls = (model.cls_token + model.new_pos_embed[:, :1]).expand(batch, -1, -1)
    dist = (model.dist_token + model.new_pos_embed[:, 1:]).expand(batch, -1, -1)
    return torch.cat([cls, dist, x], dim=1)


def test_full_size_parameter_count():
    with torch.device("meta"):
        model = Maest(architecture("discogs-maest-30s-pw-129e"))
    assert sum(p.numel() for p in model.parameters()) == 86_023_712


def test_early_exit_equals_hidden_state_of_full_pass():
    model = tiny()
    mel = torch.randn(2, 96, 100)
    hidden = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: hidden.append(out)) for block in model.blocks]
    with torch.no_grad():
        model.forward_features(mel)
        for hook in hooks:
            hook.remove()
        for blocks in range(1, model.config.depth + 1):
            torch.testing.assert_close(model.forward_features(mel, blocks=blocks), hidden[blocks - 1], atol=0, rtol=0)
        torch.testing.assert_close(model.forward_features(mel, blocks=0), model.embed(mel), atol=0, rtol=0)
    with pytest.raises(ValueError, match="blocks"):
        model.forward_features(mel, blocks=4)


def test_early_exit_runs_only_the_requested_blocks():
    model = tiny()
    calls = []
    for index, block in enumerate(model.blocks):
        block.register_forward_hook(lambda _m, _i, _o, index=index: calls.append(index))
    with torch.no_grad():
        model.forward_features(torch.randn(1, 96, 100), blocks=2)
    assert calls == [0, 1]


@pytest.mark.parametrize("every, drop", [(1, []), (2, []), (3, [0, 7, 8]), (5, [0, 1, -2, -1]), (10, [])])
def test_inference_patchout_equals_the_reduced_grid(every, drop):
    model = tiny()
    mel = torch.randn(2, 96, 106)  # 10 columns
    rows = [r for r in range(9) if r not in {d % 9 for d in drop}]
    columns = list(range(0, 10, every))
    with torch.no_grad():
        expected = manual_tokens(model, mel, rows, columns)
        torch.testing.assert_close(model.embed(mel, patchout_time=every, patchout_freq=drop), expected, atol=1e-6, rtol=0)
        for block in model.blocks[:2]:
            expected = block(expected)
        tokens = model.forward_features(mel, blocks=2, patchout_time=every, patchout_freq=drop)
        torch.testing.assert_close(tokens, expected, atol=1e-6, rtol=0)
        assert tokens.shape == (2, 2 + len(rows) * len(columns), WIDTH)
        assert pool_tokens(tokens).shape == (2, 3 * WIDTH)  # same embedding size whatever the patchout
        assert model(mel, patchout_time=every, patchout_freq=drop).shape == (2, 5)


def test_short_input_crops_time_encodings():
    model = tiny()
    mel = torch.randn(1, 96, 56)  # 5 columns out of 10 encodings
    with torch.no_grad():
        torch.testing.assert_close(model.embed(mel), manual_tokens(model, mel, list(range(9)), list(range(5))),
                                   atol=1e-6, rtol=0)


def test_training_crop_is_a_contiguous_window_of_time_encodings():
    model = tiny().train()
    mel = torch.randn(1, 96, 56)
    with torch.no_grad():
        tokens = model.embed(mel, train_patchout=False)
        patches = model.patch_embed.proj(mel.unsqueeze(1)) + model.freq_new_pos_embed
        windows = [(patches + model.time_new_pos_embed[..., s : s + 5]).flatten(2).transpose(1, 2) for s in range(6)]
    assert sum(torch.allclose(tokens[:, 2:], window, atol=1e-6, rtol=0) for window in windows) == 1


def test_too_long_input_is_an_error():
    model = tiny()
    with pytest.raises(InputTooLongError, match="segments"):
        model(torch.randn(1, 96, 116))  # 11 columns, 10 encodings
    model(torch.randn(1, 96, 115))  # (115 - 16) // 10 + 1 = 10 columns: the longest accepted


def test_training_patchout_drops_the_configured_rows_and_columns():
    model = tiny(train_patchout_freq=3, train_patchout_time=4).train()
    tokens = model.embed(torch.randn(2, 96, 106))
    assert tokens.shape == (2, 2 + (9 - 3) * (10 - 4), WIDTH)


def test_pool_tokens_order_and_size():
    tokens = torch.randn(2, 2 + 12, WIDTH)
    cls, dist, avg = tokens[:, 0], tokens[:, 1], tokens[:, 2:].mean(1)
    torch.testing.assert_close(pool_tokens(tokens), torch.cat([cls, dist, avg], -1), atol=0, rtol=0)
    torch.testing.assert_close(pool_tokens(tokens, ("avg", "cls")), torch.cat([avg, cls], -1), atol=0, rtol=0)
    torch.testing.assert_close(pool_tokens(tokens, "dist"), dist, atol=0, rtol=0)
    with pytest.raises(ValueError, match="unknown token"):
        pool_tokens(tokens, ("mean",))


def test_grid_encodings_equal_separable_ones():
    separable = tiny()
    grid = Maest(separable.config, grid_pos_embed=True).eval()
    state = {k: v for k, v in separable.state_dict().items() if not k.endswith(("freq_new_pos_embed", "time_new_pos_embed"))}
    state["grid_pos_embed"] = separable.freq_new_pos_embed + separable.time_new_pos_embed
    grid.load_state_dict(state)
    mel = torch.randn(2, 96, 86)
    with torch.no_grad():
        torch.testing.assert_close(grid(mel, patchout_time=2), separable(mel, patchout_time=2), atol=1e-6, rtol=0)


def test_head_averages_normed_cls_and_dist():
    model = tiny()
    mel = torch.randn(2, 96, 100)
    with torch.no_grad():
        normed = model.norm(model.forward_features(mel))
        expected = model.head((normed[:, 0] + normed[:, 1]) / 2)
        torch.testing.assert_close(model(mel), expected, atol=0, rtol=0)


def test_forward_intermediates_is_one_pass_equal_to_each_early_exit():
    """Tokens after blocks 0..depth, in the order asked, equal forward_features and a hand walk; one pass."""
    model = tiny()
    mel = torch.randn(2, 96, 100)
    calls = []
    for index, block in enumerate(model.blocks):
        block.register_forward_hook(lambda _m, _i, _o, index=index: calls.append(index))
    with torch.no_grad():
        asked = [2, 0, 1]
        tokens = model.forward_intermediates(mel, asked, patchout_time=2, patchout_freq=(0, 8))
        assert calls == [0, 1]  # stops at the deepest requested block, each block once
        x = model.embed(mel, 2, (0, 8))
        walked = [x]
        for block in model.blocks:
            x = block(x)
            walked.append(x)
        for block, got in zip(asked, tokens):
            torch.testing.assert_close(got, walked[block], atol=0, rtol=0)
            torch.testing.assert_close(got, model.forward_features(mel, block, 2, (0, 8)), atol=0, rtol=0)
    with pytest.raises(ValueError, match="blocks"):
        model.forward_intermediates(mel, [1, 4])
    with pytest.raises(ValueError, match="blocks"):
        model.forward_intermediates(mel, [])
