"""`maest index add` refuses to mix models it cannot check, `index build` names a damaged file, and
`maest similar` prints key then similarity in both formats, with TSV fields escaped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from index_data import write_tree
from maest import index as mi

pytest.importorskip("faiss")

SPEC = {"model": "discogs-maest-30s-pw-129e", "weights": "a" * 64, "blocks": 7, "format": "npy"}


def run(*args):
    from maest.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def vectors():
    return np.random.default_rng(0).standard_normal((12, 16)).astype(np.float32)


def test_add_without_a_spec_on_either_side_needs_assume_spec(tmp_path, vectors):
    keys = [f"t{i}.npy" for i in range(12)]
    known = write_tree(tmp_path / "known", keys[:6], vectors[:6], SPEC)
    unknown = write_tree(tmp_path / "unknown", keys[6:], vectors[6:], None)  # no maest-embed.json
    mi.build_index(known, tmp_path / "ix")
    with pytest.raises(mi.UnknownSpecError, match=f"{unknown} records no embedding spec.*--assume-spec"):
        mi.add_to_index(tmp_path / "ix", unknown)
    refused = run("index", "add", tmp_path / "ix", unknown)
    assert refused.exit_code == 1 and "--assume-spec" in refused.output and "Traceback" not in refused.output
    assert len(mi.load(tmp_path / "ix")) == 6  # nothing added
    accepted = run("index", "add", tmp_path / "ix", unknown, "--assume-spec")
    assert accepted.exit_code == 0 and "added 6" in accepted.output
    assert mi.load(tmp_path / "ix").info.embedding_spec == SPEC  # the index keeps its own spec

    # an index without a spec does not silently adopt the newcomer's (its audio queries would use that model)
    mi.build_index(unknown, tmp_path / "blind")
    with pytest.raises(mi.UnknownSpecError, match="records no embedding spec.*--assume-spec"):
        mi.add_to_index(tmp_path / "blind", known)
    assert mi.load(tmp_path / "blind").info.embedding_spec == {}
    assert len(mi.add_to_index(tmp_path / "blind", known, assume_spec=True).added) == 6
    assert mi.load(tmp_path / "blind").info.embedding_spec == SPEC  # vouched for: now recorded
    with pytest.raises(mi.UnknownSpecError, match="neither the index .* nor .* records"):  # refused as well
        mi.add_to_index(mi.build_index(unknown, tmp_path / "none").directory, unknown)


@pytest.mark.parametrize("field,value", [("weights", "b" * 64), ("blocks", 12), ("model", "other")])
def test_add_refuses_a_differing_spec_naming_the_field_even_with_assume_spec(tmp_path, vectors, field, value):
    mi.build_index(write_tree(tmp_path / "a", ["x.npy"], vectors[:1], SPEC), tmp_path / "ix")
    other = write_tree(tmp_path / "b", ["y.npy"], vectors[1:2], {**SPEC, field: value})
    with pytest.raises(mi.SpecMismatchError, match=f"{field}: .* in the index, .* in {other}"):
        mi.add_to_index(tmp_path / "ix", other, assume_spec=True)
    refused = run("index", "add", tmp_path / "ix", other, "--assume-spec")
    assert refused.exit_code == 1 and f"{field}:" in refused.output


def test_build_names_a_damaged_npy(tmp_path, vectors):
    folder = write_tree(tmp_path / "emb", ["a.npy", "b.npy"], vectors[:2], SPEC)
    good = (folder / "b.npy").read_bytes()
    for name, content in (("empty.npy", b""), ("text.npy", b"not an array\n"), ("cut.npy", good[:100]),
                          ("zip.npz", b"PK\x03\x04 truncated")):
        bad = tmp_path / f"bad-{name}"
        write_tree(bad, ["a.npy"], vectors[:1], SPEC)
        (bad / name).write_bytes(content)
        with pytest.raises(mi.SimilarityIndexError, match=f"{bad / name}: not a readable embedding"):
            mi.build_index(bad, tmp_path / f"ix-{name}")
        result = run("index", "build", bad, "-o", tmp_path / f"cli-{name}")
        assert result.exit_code == 1 and str(bad / name) in result.output and "Traceback" not in result.output
        assert not (tmp_path / f"cli-{name}").exists()


def test_similar_prints_key_then_similarity_in_both_formats_with_tsv_escaped(tmp_path, vectors):
    keys = ["plain.npy", "tab\there.npy", "back\\slash.npy", "line\\nlike.npy", "x.npy", "y.npy"]
    mi.build_index(mi.EmbeddingSet(keys, vectors[:6], SPEC), tmp_path / "ix")
    expected = mi.load(tmp_path / "ix").search("plain.npy", k=5)

    tsv = run("similar", "plain.npy", "--index", tmp_path / "ix", "-k", "5", "--format", "tsv")
    assert tsv.exit_code == 0, tsv.output
    rows = [line.split("\t") for line in tsv.output.splitlines()]
    assert all(len(row) == 2 for row in rows), rows  # a tab inside a key does not make a third column
    unescape = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\\\": "\\"}
    import re

    decoded = [re.sub(r"\\[tnr\\]", lambda m: unescape[m.group()], key) for key, _ in rows]
    assert decoded == [k for k, _ in expected]  # escaping is reversible: "line\nlike" stays itself
    assert [float(s) for _, s in rows] == pytest.approx([s for _, s in expected], abs=1e-4)
    assert "tab\\there.npy" in [key for key, _ in rows] and "back\\\\slash.npy" in [key for key, _ in rows]

    table = run("similar", "plain.npy", "--index", tmp_path / "ix", "-k", "5")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert [line.split()[-1] for line in lines] == [f"{s:.4f}" for _, s in expected]  # similarity last
    assert [line[:len(key)] for line, (key, _) in zip(lines, expected)] == [k for k, _ in expected]  # key first
