"""``--precision auto`` (the default): bf16 only where the device computes it natively; on a CPU
without AMX/AVX512-BF16 it is fp32, bit for bit; the summary line and the folder's settings say it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from eval_data import tiny_model
from maest import precision as precision_module
from maest.cli import app
from maest.extraction import SettingsMismatchError, extract
from maest.inference import EmbedOptions as pipeline_options
from maest.inference import choose_precision, load_model
from maest.model import pool_tokens
from maest.precision import CPU_BF16_ENV, PrecisionError, auto_precision, cpu_bf16_flags, cpu_flags, describe


@pytest.fixture(autouse=True)
def real_decision(monkeypatch):
    """tests/conftest.py pins the CPU decision to fp32 for the rest of the suite; here it is free."""
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 3) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "a.wav"
    sf.write(path, samples, 16000)
    return path


def test_cpu_decision_follows_the_bf16_flags():
    amx = auto_precision("cpu", frozenset({"avx2", "amx_tile", "amx_bf16", "avx512_bf16"}))
    assert amx.precision == "bf16" and amx.reason == "auto: this CPU has amx_bf16 and avx512_bf16"
    assert auto_precision("cpu", frozenset({"avx512f", "avx512_bf16"})).precision == "bf16"
    plain = auto_precision("cpu", frozenset({"avx", "avx2", "fma", "avx512f"}))  # AVX-512 alone emulates bf16
    assert plain.precision == "fp32" and "no AMX or AVX512-BF16" in plain.reason
    assert auto_precision("cpu", frozenset()).precision == "fp32"


def test_the_environment_overrides_the_cpu_decision_only(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert auto_precision("cpu", frozenset({"avx2"})).precision == "bf16"
    assert choose_precision(None, "cpu").reason == f"auto: {CPU_BF16_ENV}=1"
    assert choose_precision("fp32", "cpu").precision == "fp32"  # an explicit choice wins
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert auto_precision("cpu", frozenset({"amx_bf16"})).precision == "fp32"
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(PrecisionError, match=f"{CPU_BF16_ENV} must be 0 or 1"):
        auto_precision("cpu", frozenset())


def test_gpus_choose_bf16_or_fp16_and_other_devices_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_precision("auto", "cuda").precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_precision(None, "cuda").precision == "fp16"
    assert auto_precision("mps").precision == "fp32"


def test_cpu_flags_are_read_from_the_first_flags_line(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    monkeypatch.setattr(precision_module, "_CPUINFO", fake)
    cpu_flags.cache_clear()
    try:
        assert cpu_flags() == frozenset({"fpu", "avx2", "amx_bf16", "amx_tile"})
        assert cpu_bf16_flags() == ("amx_bf16",)
        monkeypatch.setattr(precision_module, "_CPUINFO", tmp_path / "absent")
        cpu_flags.cache_clear()
        assert cpu_flags() is None
        assert "unreadable" in auto_precision("cpu").reason and auto_precision("cpu").precision == "fp32"
    finally:
        cpu_flags.cache_clear()


def test_auto_on_a_cpu_without_bf16_units_is_fp32_bit_for_bit(checkpoint, wav):
    if cpu_bf16_flags():
        pytest.skip(f"this CPU has {cpu_bf16_flags()}: auto is bf16 here")
    auto = load_model(checkpoint, "cpu")
    assert auto.precision == "fp32" and auto.precision_reason.startswith("auto: this CPU has no")
    fp32 = load_model(checkpoint, "cpu", precision="fp32")
    assert fp32.precision_reason == "asked"
    for blocks in (1, 2):
        a = auto.embed(str(wav), blocks=blocks, per_segment=True)[0]
        b = fp32.embed(str(wav), blocks=blocks, per_segment=True)[0]
        assert np.array_equal(a, b)
    assert np.array_equal(auto.tag(str(wav)), fp32.tag(str(wav)))


def test_summary_line_and_settings_say_the_precision_and_why(tmp_path, checkpoint, wav, monkeypatch):
    assert describe(auto_precision("cpu", frozenset())) == (
        "precision fp32 (auto: this CPU has no AMX or AVX512-BF16 (bf16 would be emulated, slower))")
    common = [str(wav), "-m", str(checkpoint), "--blocks", "2", "--decode-workers", "0", "--no-progress"]
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    result = CliRunner().invoke(app, ["embed", *common, "-o", str(tmp_path / "auto")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"; precision bf16 (auto: {CPU_BF16_ENV}=1)")
    assert json.loads((tmp_path / "auto" / "maest-embed.json").read_text())["precision"] == "bf16"
    with pytest.raises(SettingsMismatchError, match=r"precision \(bf16 vs fp32\).*pass --precision bf16"):
        extract([wav], tmp_path / "auto", str(checkpoint), blocks=2, progress=False, precision="fp32")
    asked = CliRunner().invoke(app, ["embed", *common, "-o", str(tmp_path / "fp32"), "--precision", "fp32"])
    assert asked.exit_code == 0 and asked.stdout.strip().endswith("; precision fp32 (asked)")
    tagged = CliRunner().invoke(app, ["tag", str(wav), "-m", str(checkpoint), "--decode-workers", "0",
                                      "--precision", "auto"])
    assert tagged.exit_code == 0, tagged.output
    assert f"1 tagged, 0 failed; precision bf16 (auto: {CPU_BF16_ENV}=1)" in tagged.stderr


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_weights_cast_once_give_autocasts_outputs_bit_for_bit(checkpoint, precision):
    """The pipeline runs a copy whose matmul weights are cast once; autocast over the fp32 model
    (what it ran before, casting them every batch) gives the same bits, and the fp32 model is untouched."""
    pipeline = load_model(checkpoint, "cpu", precision=precision)
    fp32_model = pipeline.model
    assert all(p.dtype == torch.float32 for p in fp32_model.parameters())
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert pipeline._matmul_model.blocks[0].attn.qkv.weight.dtype == dtype
    mel = torch.randn(3, 96, pipeline.config.segment_frames, generator=torch.Generator().manual_seed(2))
    options_embed, options_tag = pipeline_options(blocks=2), pipeline_options(blocks=None)
    with torch.inference_mode(), pipeline.autocast():
        tokens = fp32_model.forward_features(mel, 2)
        expected_embed = pool_tokens(tokens).float().numpy()
        logits = fp32_model.head(fp32_model.head_features(fp32_model.forward_features(mel)))
        expected_tag = torch.sigmoid(logits.float()).numpy()
    assert np.array_equal(pipeline._embed_batch(options_embed, mel), expected_embed)
    assert np.array_equal(pipeline._tag_batch(options_tag, mel), expected_tag)
    fp32 = load_model(checkpoint, "cpu", precision="fp32")
    assert fp32._matmul_model is fp32.model  # fp32 runs the model itself: no copy


def test_hear_follows_the_precision(checkpoint, monkeypatch):
    from maest.hear import get_scene_embeddings
    from maest.hear import load_model as load_hear

    audio = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 16000 * 2)).astype(np.float32) * 0.1)
    auto, fp32 = load_hear(str(checkpoint), blocks=2), load_hear(str(checkpoint), blocks=2, precision="fp32")
    if not cpu_bf16_flags():
        assert auto.precision == "fp32"
        assert torch.equal(get_scene_embeddings(audio, auto), get_scene_embeddings(audio, fp32))
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    bf16 = load_hear(str(checkpoint), blocks=2)
    assert bf16.precision == "bf16"
    reference, embeddings = get_scene_embeddings(audio, fp32), get_scene_embeddings(audio, bf16)
    assert embeddings.dtype == torch.float32 and not torch.equal(embeddings, reference)
    assert torch.nn.functional.cosine_similarity(embeddings, reference).min() >= 0.99


def test_ray_actors_take_auto_as_the_default(monkeypatch):
    from maest.distributed.engine import default_precision

    assert default_precision("auto", "cuda") == default_precision(None, "cuda") == "bf16"  # the driver may lack a GPU
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert default_precision("auto", "cpu") == default_precision(None, "cpu") == "bf16"
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert default_precision(None, "cpu") == "fp32"
