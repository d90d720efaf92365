"""maest.index: exact results equal numpy brute force, HNSW recall, add == rebuild, inputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import index_data
from maest import index as mi

pytest.importorskip("faiss")


def clustered(n: int, dims: int, clusters: int, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    return clustered_with_labels(n, dims, clusters, seed, spread)[0]


def clustered_with_labels(n: int, dims: int, clusters: int, seed: int = 0, spread: float = 0.6):
    """``(vectors, cluster of each row)``: gaussian blobs around random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims))
    labels = rng.integers(0, clusters, n)
    return (centres[labels] + spread * rng.standard_normal((n, dims))).astype(np.float32), labels


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int, skip: int | None = None,
                dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference: cosine similarity of ``query`` with every row, top k (``skip`` left out).

    ``dtype="float16"``: the unit rows rounded to float16, as such an index stores them.
    """
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(dtype).astype(np.float32)
    scores = unit @ (query / np.linalg.norm(query))
    if skip is not None:
        scores[skip] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


def keys_for(n: int, start: int = 0) -> list[str]:
    return [f"artist{i % 7}/track{i:05d}.npy" for i in range(start, start + n)]


def write_tree(root: Path, keys: list[str], vectors: np.ndarray, spec: dict | None = None) -> Path:
    return index_data.write_tree(root, keys, vectors, spec)


@pytest.mark.parametrize("kind,dtype", [("exact", "float32"), ("exact", "float16"), ("approximate", "float32")])
def test_results_equal_numpy_brute_force(tmp_path, kind, dtype):
    vectors = clustered(400, 48, clusters=8)
    keys = keys_for(400)
    mi.build_index(mi.EmbeddingSet(keys, vectors), tmp_path / "ix", kind=kind, dtype=dtype)
    index = mi.load(tmp_path / "ix", ef_search=400)  # on 400 vectors a full-breadth HNSW walk is exact
    for row in (0, 17, 399):
        query = vectors[row].astype(dtype).astype(np.float32) if dtype == "float16" else vectors[row]
        order, scores = brute_force(vectors, query, 10, skip=row, dtype=dtype)
        found = index.search(keys[row], k=10)
        assert [k for k, _ in found] == [keys[i] for i in order]
        np.testing.assert_allclose([s for _, s in found], scores, atol=1e-3 if dtype == "float16" else 1e-5)
        query = vectors[row] + 0.3  # an arbitrary vector (not in the index): same answer as numpy
        order, scores = brute_force(vectors, query, 5, dtype=dtype)
        found = index.search(query, k=5)
        assert [k for k, _ in found] == [keys[i] for i in order]
        np.testing.assert_allclose([s for _, s in found], scores, atol=1e-5)


def test_query_by_key_excludes_itself_unless_asked(tmp_path):
    vectors = clustered(50, 16, clusters=3)
    keys = keys_for(50)
    mi.build_index(mi.EmbeddingSet(keys, vectors), tmp_path / "ix")
    index = mi.load(tmp_path / "ix")
    assert keys[5] not in [k for k, _ in index.search(keys[5], k=49)]
    assert len(index.search(keys[5], k=49)) == 49
    first, similarity = index.search(keys[5], k=3, exclude_self=False)[0]
    assert first == keys[5] and similarity == pytest.approx(1.0, abs=1e-5)
    assert index.search("artist5/track00005", k=2) == index.search(keys[5], k=2)  # the key without ".npy"
    assert index.search("artist5/track00005.wav", k=2) == index.search(keys[5], k=2)  # the audio's name
    dotted = ["x/01. intro.npy", "x/02. outro.npy", "y/a.npy", "z/a.npy"]
    mi.build_index(mi.EmbeddingSet(dotted, vectors[:4]), tmp_path / "dotted")
    index = mi.load(tmp_path / "dotted")
    assert "x/01. intro" in index and "x/01. intro.flac" in index
    with pytest.raises(mi.UnknownKeyError, match="not in the index"):
        index.search("a")  # y/a.npy and z/a.npy: a key must name its folder too


def test_approximate_recall_at_10_on_clustered_vectors(tmp_path):
    vectors = clustered(3000, 128, clusters=30, seed=1, spread=1.0)
    keys = keys_for(3000)
    info = mi.build_index(mi.EmbeddingSet(keys, vectors), tmp_path / "ix", kind="approximate")
    assert info.kind == "approximate" and info.memory_bytes > 3000 * 128 * 4
    index = mi.load(tmp_path / "ix")
    queries = np.random.default_rng(2).choice(3000, 100, replace=False)
    hits = 0
    for row in queries:
        order, _ = brute_force(vectors, vectors[row], 10, skip=row)
        hits += len({keys[i] for i in order} & {k for k, _ in index.search(keys[row], k=10)})
    recall = hits / (10 * len(queries))
    assert recall >= 0.95, recall


@pytest.mark.parametrize("kind", ["exact", "approximate"])
def test_add_equals_rebuild_and_reports_removed_tracks(tmp_path, kind):
    vectors = clustered(300, 32, clusters=5, seed=3)
    keys = keys_for(300)
    first = write_tree(tmp_path / "emb", keys[:200], vectors[:200], spec={"model": "m", "blocks": 7})
    mi.build_index(first, tmp_path / "grown", kind=kind)
    write_tree(first, keys[200:], vectors[200:])
    (first / keys[3]).unlink()  # a track removed from the embedding folder: reported, kept
    report = mi.add_to_index(tmp_path / "grown", first)
    assert sorted(report.added) == sorted(keys[200:]) and len(report.skipped) == 199
    assert report.missing == [keys[3]]
    assert mi.load(tmp_path / "grown").missing(first) == [keys[3]]
    assert mi.add_to_index(tmp_path / "grown", first).added == []  # a second add finds nothing new
    write_tree(first, keys[3:4], vectors[3:4])
    mi.build_index(first, tmp_path / "rebuilt", kind=kind)
    grown, rebuilt = mi.load(tmp_path / "grown", ef_search=300), mi.load(tmp_path / "rebuilt", ef_search=300)
    assert sorted(grown.keys) == sorted(rebuilt.keys) and len(grown) == 300
    for key in (keys[0], keys[150], keys[250]):
        a, b = grown.search(key, k=10), rebuilt.search(key, k=10)
        assert [k for k, _ in a] == [k for k, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_auto_index_turns_approximate_when_adds_cross_the_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(mi.search, "EXACT_MAX_VALUES", 100 * 16)
    vectors = clustered(150, 16, clusters=4)
    keys = keys_for(150)
    spec = {"model": "m", "blocks": 7}
    assert mi.build_index(mi.EmbeddingSet(keys[:100], vectors[:100], spec), tmp_path / "ix").kind == "exact"
    report = mi.add_to_index(tmp_path / "ix", mi.EmbeddingSet(keys, vectors, spec))
    assert report.kind == "approximate" and len(report.added) == 50
    index = mi.load(tmp_path / "ix", ef_search=200)
    order, _ = brute_force(vectors, vectors[120], 5, skip=120)
    assert [k for k, _ in index.search(keys[120], k=5)] == [keys[i] for i in order]


def test_pca_and_float16_shrink_memory_and_add_reuses_the_projection(tmp_path):
    vectors, labels = clustered_with_labels(500, 256, clusters=10, seed=4)
    keys = keys_for(500)
    spec = {"model": "m", "blocks": 7}
    full = mi.build_index(mi.EmbeddingSet(keys[:400], vectors[:400], spec), tmp_path / "full")
    small = mi.build_index(mi.EmbeddingSet(keys[:400], vectors[:400], spec), tmp_path / "small", pca_dims=32,
                           dtype="float16")
    assert small.dims == 32 and small.source_dims == 256
    assert 0.3 < small.pca_explained_variance <= 1.0
    assert small.memory_bytes < full.memory_bytes / 10
    mean_before = mi.load(tmp_path / "small").pca.mean
    mi.add_to_index(tmp_path / "small", mi.EmbeddingSet(keys, vectors, spec))
    np.testing.assert_array_equal(mi.load(tmp_path / "small").pca.mean, mean_before)
    index = mi.load(tmp_path / "small")
    assert len(index) == 500
    rows = {key: row for row, key in enumerate(keys)}
    for query in (keys[10], keys[450]):  # an original and an added track: neighbours from their own cluster
        assert {labels[rows[k]] for k, _ in index.search(query, k=10)} == {labels[rows[query]]}
    with pytest.raises(mi.DimensionMismatchError, match="256-d"):
        index.search(np.zeros(32, np.float32))  # queries are embeddings, not projected vectors


def test_per_segment_npy_and_npz_are_averaged_to_one_vector(tmp_path):
    rng = np.random.default_rng(5)
    segments = rng.standard_normal((3, 4, 8)).astype(np.float32)
    root = tmp_path / "segs"
    root.mkdir()
    for i in range(3):
        np.save(root / f"t{i}.npy", segments[i])
    np.savez(root / "z.npz", embedding=segments[0].mean(axis=0), segment_starts=np.zeros(4), duration=np.float64(1))
    data = mi.read_embeddings(root)
    assert data.keys == ["t0.npy", "t1.npy", "t2.npy", "z.npz"]
    np.testing.assert_allclose(data.vectors[:3], segments.mean(axis=1), atol=1e-6)
    mi.build_index(root, tmp_path / "ix")
    assert mi.load(tmp_path / "ix").search("t0.npy", k=1)[0] == ("z.npz", pytest.approx(1.0, abs=1e-5))


def test_bad_inputs_give_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(mi.EmptySourceError, match="no embeddings"):
        mi.build_index(tmp_path / "empty", tmp_path / "ix")
    with pytest.raises(FileNotFoundError, match="maest embed"):
        mi.build_index(tmp_path / "nowhere", tmp_path / "ix")
    mixed = write_tree(tmp_path / "mixed", ["a.npy"], np.ones((1, 8), np.float32))
    write_tree(mixed, ["b.npy"], np.ones((1, 9), np.float32))
    with pytest.raises(mi.DimensionMismatchError, match=r"mixes embedding sizes: 8 \(a.npy\), 9 \(b.npy\)"):
        mi.build_index(mixed, tmp_path / "ix")
    vectors = clustered(20, 8, clusters=2)
    emb = write_tree(tmp_path / "emb", keys_for(20), vectors, spec={"model": "m", "blocks": 7, "format": "npy"})
    mi.build_index(emb, tmp_path / "ix")
    with pytest.raises(mi.IndexExistsError, match="add_to_index"):
        mi.build_index(emb, tmp_path / "ix")
    index = mi.load(tmp_path / "ix")
    with pytest.raises(mi.DimensionMismatchError, match="8-d embeddings, got shape"):
        index.search(np.zeros(9, np.float32))
    with pytest.raises(mi.UnknownKeyError, match="'nope.npy' is not in the index"):
        index.search("nope.npy")
    with pytest.raises(mi.IndexFormatError, match="not an index"):
        mi.load(tmp_path / "emb")
    other = write_tree(tmp_path / "other", ["x.npy"], vectors[:1], spec={"model": "m", "blocks": 12, "format": "parquet"})
    with pytest.raises(mi.SpecMismatchError, match="blocks: 7 in the index, 12 in"):
        mi.add_to_index(tmp_path / "ix", other)
    (tmp_path / "ix" / mi.load(tmp_path / "ix").generation / "paths.txt").write_text("a\n")  # files that disagree
    with pytest.raises(mi.IndexFormatError, match="1 paths, 20 vectors"):
        mi.load(tmp_path / "ix")


# -- end to end: generated audio with learnable classes, a tiny random MAEST, maest.extract --------
CLASSES, PER_CLASS = 6, 5


@pytest.fixture(scope="module")
def tone_collection(tmp_path_factory):
    """Tracks of a class-specific harmonic tone (maest.train.demo), embedded as npy and parquet."""
    from maest.extraction import extract
    from maest.inference import load_model
    from maest.train.demo import class_frequencies, synthesize
    from eval_data import tiny_model

    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    frequencies = class_frequencies(CLASSES)
    for label in range(CLASSES):
        for i in range(PER_CLASS):
            path = root / "audio" / f"class{label}" / f"t{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, synthesize([label], 1.5, frequencies, rng), 16000)
    checkpoint = tiny_model(root / "tiny.pt")
    pipeline = load_model(checkpoint, device="cpu")
    extract([root / "audio"], root / "npy", checkpoint, blocks=2, device="cpu", progress=False)  # spec: its path
    extract([root / "audio"], root / "parquet", pipeline, blocks=2, output_format="parquet", progress=False)
    return root, pipeline


def test_nearest_neighbour_is_of_its_own_class_from_npy_and_parquet(tone_collection, tmp_path):
    root, _ = tone_collection
    answers = {}
    for fmt, source in (("npy", root / "npy"), ("parquet", root / "parquet" / "embeddings.parquet")):
        info = mi.build_index(source, tmp_path / fmt)
        assert info.count == CLASSES * PER_CLASS and info.embedding_spec["blocks"] == 2
        index = mi.load(tmp_path / fmt)
        answers[fmt] = {Path(k).parent.name: [] for k in index.keys}
        for key in index.keys:
            neighbour, _ = index.search(key, k=1)[0]
            answers[fmt][Path(key).parent.name].append(Path(neighbour).parent.name == Path(key).parent.name)
    assert set(mi.load(tmp_path / "npy").keys) == {k.replace(".wav", ".npy") for k in mi.load(tmp_path / "parquet").keys}
    for fmt, per_class in answers.items():
        accuracy = np.mean([hit for hits in per_class.values() for hit in hits])
        # chance: 4 of the 29 other tracks share the class (0.14); measured 0.90 (27/30) on this seed
        assert accuracy >= 0.75, (fmt, accuracy)


def test_similar_embeds_an_audio_query_with_the_index_spec(tone_collection, tmp_path):
    root, pipeline = tone_collection
    mi.build_index(root / "npy", tmp_path / "ix")
    query = root / "audio" / "class3" / "t1.wav"
    by_audio = mi.similar(tmp_path / "ix", query, k=3, device="cpu")  # the model named in maest-embed.json
    index = mi.load(tmp_path / "ix")
    expected = index.search(pipeline.embed(query, blocks=2), k=3)
    assert [k for k, _ in by_audio] == [k for k, _ in expected]
    assert by_audio[0] == ("class3/t1.npy", pytest.approx(1.0, abs=1e-4))  # the file itself, embedded again
    assert mi.similar(tmp_path / "ix", "class3/t1.npy", k=3)[0][0] != "class3/t1.npy"  # a key excludes itself
    mi.build_index(root / "parquet", tmp_path / "table")  # its spec names the model "tiny-0": pass the model
    assert mi.similar(tmp_path / "table", query, k=3, model=pipeline)[0] == ("class3/t1.wav", pytest.approx(1.0, abs=1e-4))
    from eval_data import tiny_model
    from maest.inference import load_model

    other = load_model(tiny_model(tmp_path / "other", seed=5), "cpu")
    with pytest.raises(mi.SimilarityIndexError, match="other weights"):  # a query from another model's space
        mi.similar(tmp_path / "ix", query, k=3, model=other)


def test_parquet_tables_of_a_sharded_run_are_indexed_together(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    vectors = clustered(30, 12, clusters=3)
    keys = [f"album/{i}.flac" for i in range(30)]
    folder = tmp_path / "table"
    folder.mkdir()
    for shard, rows in enumerate((range(0, 18), range(18, 30))):  # the embed output's table columns
        flat = pa.array(vectors[list(rows)].reshape(-1))
        table = pa.table({"path": [keys[i] for i in rows], "embedding": pa.FixedSizeListArray.from_arrays(flat, 12)})
        pq.write_table(table, folder / f"embeddings.shard-{shard}-of-2.parquet")
    data = mi.read_embeddings(folder)
    assert data.keys == keys
    np.testing.assert_allclose(data.vectors, vectors)
    mi.build_index(folder, tmp_path / "ix")
    order, _ = brute_force(vectors, vectors[20], 3, skip=20)
    assert [k for k, _ in mi.load(tmp_path / "ix").search("album/20.flac", k=3)] == [keys[i] for i in order]
