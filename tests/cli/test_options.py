"""What the CLI package shares across commands: one token syntax, renamed worker flags, early validation,
``maest --version`` and ``maest models``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import maest
from eval_data import tiny_model
from maest.cli import app
from maest.cli.options import split_token_stacks
from maest.registry import PUBLISHED
from maest.model import parse_tokens

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random MAEST and a folder with one 2 s noise clip."""
    root = tmp_path_factory.mktemp("cli-options")
    music = root / "music"
    music.mkdir()
    rng = np.random.default_rng(0)
    sf.write(music / "clip.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    return tiny_model(root / "model"), music


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


# --- tokens: one syntax ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["cls,dist,avg", "c,d,a", "cda", "cd,avg", " cls, dist ,avg", ("cls", "dist", "avg"),
                                  ("c", "d", "a"), ("cda",)])
def test_every_spelling_of_a_stack_is_the_same(spec):
    assert parse_tokens(spec) == ("cls", "dist", "avg")


def test_single_tokens_and_order():
    assert [parse_tokens(s) for s in ("cls", "c", "dist", "d", "avg", "a")] == [("cls",)] * 2 + [("dist",)] * 2 + [("avg",)] * 2
    assert parse_tokens("avg,cls") == parse_tokens("ac") == ("avg", "cls")


@pytest.mark.parametrize("spec", ["", ",", "x", "cdx", "cls,foo", "CLS", ("",), (1,), ()])
def test_bad_token_specs_are_refused(spec):
    with pytest.raises(ValueError, match="unknown token spec"):
        parse_tokens(spec)


def test_parse_tokens_is_still_importable_from_evaluate_features():
    from maest.evaluate import features

    assert features.parse_tokens is parse_tokens


def test_token_stacks_keep_the_comma_syntax_and_accept_semicolons():
    assert split_token_stacks("c,d,a,cd,ca,da,cda") == ["c", "d", "a", "cd", "ca", "da", "cda"]
    assert split_token_stacks("cls,dist;avg; cda") == ["cls,dist", "avg", "cda"]
    assert [parse_tokens(s) for s in split_token_stacks("cls,dist;c,a")] == [("cls", "dist"), ("cls", "avg")]


def test_embed_outputs_are_equal_for_every_token_spelling(tiny, tmp_path):
    model, music = tiny
    outputs = {}
    for spec in ("cls,dist,avg", "cda", "c,d,a"):
        out = tmp_path / spec.replace(",", "_")
        result = invoke("embed", music, "-o", out, "--model", model, "--blocks", "1", "--tokens", spec,
                        "--decode-workers", "0", "--no-progress")
        assert result.exit_code == 0, result.output
        outputs[spec] = np.load(out / "clip.npy")
    assert outputs["cda"].shape == (3 * 32,)
    np.testing.assert_array_equal(outputs["cda"], outputs["cls,dist,avg"])
    np.testing.assert_array_equal(outputs["c,d,a"], outputs["cls,dist,avg"])


def test_bad_tokens_are_refused_before_anything_runs(tmp_path):
    result = invoke("embed", tmp_path, "-o", tmp_path / "out", "--model", tmp_path / "no-model", "--tokens", "cdx")
    assert result.exit_code == 2 and "--tokens" in result.output and "unknown token spec" in result.output
    assert not (tmp_path / "out").exists()
    result = invoke("experiment", "blocks", "mtt", "--metadata", tmp_path, "--audio-root", tmp_path, "-o", tmp_path / "x",
                    "--tokens", "cls,dist;cx")
    assert result.exit_code == 2 and "'cx'" in result.output


# --- workers: --decode-workers, --probe-workers, the old --workers ----------------------------------
def test_old_workers_flag_still_works_with_a_note_naming_the_new_one(tiny, tmp_path):
    model, music = tiny
    base = ["embed", music, "--model", model, "--blocks", "1", "--no-progress"]
    old = invoke(*base, "-o", tmp_path / "old", "--workers", "0")
    new = invoke(*base, "-o", tmp_path / "new", "--decode-workers", "0")
    assert old.exit_code == new.exit_code == 0, old.output
    note = "note: --workers is deprecated here; use --decode-workers (same meaning)\n"
    assert old.stderr.startswith(note) and note not in new.stderr
    assert old.stderr.count("\n") == 1 + new.stderr.count("\n")  # one line more than with the new flag
    np.testing.assert_array_equal(np.load(tmp_path / "old" / "clip.npy"), np.load(tmp_path / "new" / "clip.npy"))
    both = invoke(*base, "-o", tmp_path / "both", "--workers", "0", "--decode-workers", "1")
    assert both.exit_code == 1 and "give only the new one" in both.output


@pytest.mark.parametrize("command", [["eval"], ["experiment", "blocks"], ["experiment", "patchout"]])
def test_old_workers_of_probe_commands_names_probe_workers(command, tmp_path):
    result = invoke(*command, "mtt", "--metadata", tmp_path / "none", "--audio-root", tmp_path, "-o", tmp_path / "o",
                    "--workers", "1")
    assert "use --probe-workers" in result.stderr
    assert result.exit_code == 1  # then fails on the missing split files, as without the flag


def test_prepare_and_tag_take_decode_workers(tmp_path):
    for command in (["prepare", tmp_path / "store", "--list", tmp_path / "none.tsv"], ["tag", tmp_path / "none.wav"]):
        assert "--decode-workers" in invoke(*command, "--help").output
        result = invoke(*command, "--workers", "0", "--model" if command[0] == "tag" else "--crop",
                        tmp_path / "no-model" if command[0] == "tag" else "full")
        assert "use --decode-workers" in result.stderr


# --- values refused by Typer before anything runs ---------------------------------------------------
@pytest.mark.parametrize("args", [
    ["tag", "x.wav", "--top-k", "0"],
    ["tag", "x.wav", "--top-k", "-1"],
    ["tag", "x.wav", "--batch-size", "0"],
    ["embed", "x.wav", "-o", "OUT", "--batch-size", "0"],
    ["embed", "x.wav", "-o", "OUT", "--decode-workers", "-1"],
    ["embed", "x.wav", "-o", "OUT", "--workers", "-1"],
    ["eval", "mtt", "--metadata", "m", "--audio-root", "a", "-o", "OUT", "--probe-workers", "-2"],
])
def test_obviously_bad_values_are_one_typer_error(args, tmp_path):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = invoke(*args, "--model", tmp_path / "no-model")
    assert result.exit_code == 2, result.output
    flag = next(a for a in args if a.startswith("--") and a not in ("--metadata", "--audio-root"))
    assert f"Invalid value for '{flag}'" in result.output
    assert "CheckpointError" not in result.output and not (tmp_path / "out").exists()


# --- maest --version, maest models ------------------------------------------------------------------
def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"maest {maest.__version__}\n"
    ran = subprocess.run([sys.executable, "-m", "maest.cli", "--version"], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": SRC, "PATH": ""})
    assert ran.stdout == f"maest {maest.__version__}\n"


def test_models_lists_the_registry_and_what_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    complete, no_weights = tmp_path / "discogs-maest-10s-dw-75e", tmp_path / "discogs-maest-5s-pw-129e"
    for folder in (complete, no_weights):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    (complete / "model.safetensors").write_bytes(b"")
    result = invoke("models")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "segment", "classes", "init", "cached"]
    rows = {line.split()[0]: line.split() for line in lines[1:1 + len(PUBLISHED)]}
    assert list(rows) == list(PUBLISHED)
    for name, published in PUBLISHED.items():
        cached = "yes" if name == complete.name else "no"
        assert rows[name] == [name, str(published.segment_seconds), "s", str(published.num_classes), published.init, cached]
    assert rows["discogs-maest-30s-pw-129e-519l"][3] == "519" and rows["discogs-maest-10s-fs-129e"][4] == "random"
    assert str(tmp_path) in lines[-1]


def test_help_lists_models_and_version():
    output = invoke("--help").output
    assert "models" in output and "--version" in output
