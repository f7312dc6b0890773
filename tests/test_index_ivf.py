"""IVF-PQ shards: PQ codes (dim / 4 bytes) trained once and shared, candidates re-scored from
the 8-bit vectors on disk; recall against brute force, filters, save and a mapped load."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from congruence.core.settings import load_settings
from congruence.indexer import ivf
from congruence.indexer.generations import sha256_file
from congruence.indexer.index import VectorIndex
from tests.test_index import brute_force, recall, seqs_for, synthetic

D = 64


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return synthetic(20_000, 50, D, seed=5)


def shard(template: object, xb: np.ndarray, seqs: np.ndarray) -> VectorIndex:
    index = VectorIndex(D, "ivfpq", "pq", template=template)
    for i in range(0, len(xb), 5000):  # in chunks, as a build adds them
        index.add(seqs[i : i + 5000], np.ones(len(seqs[i : i + 5000]), np.int64), xb[i : i + 5000])
    return index


def test_refined_ivfpq_recall_at_10_and_exact_scores(data: tuple[np.ndarray, np.ndarray]) -> None:
    xb, xq = data
    template = ivf.train_ivfpq(xb[:10_000], nlist=64)
    index = shard(template, xb, seqs_for(len(xb)))
    D_, L = index.search(xq, 10)
    D_ref, I_ref = brute_force(xq, xb, 10)
    assert recall(L, seqs_for(len(xb))[I_ref]) >= 0.95
    pos = index.positions(L.ravel()).reshape(L.shape)
    np.testing.assert_allclose(D_, np.einsum("qd,qkd->qk", xq, xb[pos]), atol=5e-3)  # 8-bit vectors: to 5e-3 at 64-d
    codes = faiss.extract_index_ivf(index.index).code_size
    assert codes == D // 4  # the bytes an account costs in RAM, besides its id


def test_shards_from_one_template_share_quantiser_and_codebook(data: tuple[np.ndarray, np.ndarray]) -> None:
    xb, _ = data
    template = ivf.train_ivfpq(xb[:10_000], nlist=64)
    a, b = shard(template, xb[:8000], seqs_for(8000)), shard(template, xb[8000:16000], seqs_for(8000))
    pa, pb = a.index, b.index
    assert np.array_equal(faiss.vector_to_array(pa.pq.centroids), faiss.vector_to_array(pb.pq.centroids))
    qa, qb = (faiss.downcast_index(p.quantizer) for p in (pa, pb))
    assert np.array_equal(qa.reconstruct_n(0, 64), qb.reconstruct_n(0, 64))


def test_filters_and_a_mapped_load(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    xb, xq = data
    seqs = seqs_for(len(xb))
    index = shard(ivf.train_ivfpq(xb[:10_000], nlist=64), xb, seqs)
    index.remove(seqs[:100])
    man = index.save(tmp_path, "head:x", "head:x", 0)
    assert man.kind == "ivfpq" and man.codec == "pq"
    loaded, _ = VectorIndex.load(tmp_path, mapped=True)
    assert isinstance(loaded.refine.codes, np.memmap) and loaded.refine.codes.dtype == np.int8
    assert loaded.n_alive == len(xb) - 100
    allowed = np.zeros(len(xb), bool)
    allowed[::7] = True  # broad enough for the probe (1/7 of the accounts)
    for mask in (None, allowed, allowed & (np.arange(len(xb)) < 700)):  # the last: scanned exactly
        D_, L = loaded.search(xq, 10, None if mask is None else mask)
        ok = np.ones(len(xb), bool) if mask is None else mask.copy()
        ok[:100] = False  # removed
        _, I_ref = brute_force(xq, xb, 10, ok)
        assert recall(L, seqs[I_ref]) >= (0.95 if mask is None else 0.9)
        assert set(L[L >= 0].ravel().tolist()) <= set(seqs[ok].tolist())


def test_8_and_16_bit_refinement_vectors() -> None:
    xb, xq = synthetic(2000, 5, D, seed=9)
    pos = np.arange(0, 2000, 3)
    ref = ivf.RefineVectors.of(xb)
    assert ref.bits == 8 and ref.codes.dtype == np.int8 and ref.codes.nbytes == xb.size  # a byte a dimension
    err = np.abs(ref.scores(pos, xq) - xq @ xb[pos].T)
    assert err.max() < 5e-3 and err.mean() < 1e-3
    np.testing.assert_allclose(ref.rows(pos), xb[pos], atol=np.abs(xb).max() / 254 + 1e-3)
    wide = ivf.RefineVectors.of(xb, 16)
    assert wide.bits == 16 and wide.codes.nbytes == 2 * xb.size
    err16 = np.abs(wide.scores(pos, xq) - xq @ xb[pos].T)
    assert err16.max() < 5e-4 and err16.mean() < err.mean() / 10
    with pytest.raises(ValueError, match="8 or 16 bits"):
        ivf.RefineVectors.of(xb, 12)
    with pytest.raises(ValueError, match="CONGRUENCE_SHARD_REFINE_BITS: expected 8 or 16, got 12"):
        load_settings({"CONGRUENCE_SHARD_REFINE_BITS": "12"})
    assert load_settings({"CONGRUENCE_SHARD_REFINE_BITS": "16"}).shard_refine_bits == 16
    assert load_settings({}).shard_refine_bits == 8


def _as_written_before(root: Path, xb_by_position: np.ndarray) -> None:
    """Turn the current generation under ``root`` into one of before: float16 rows in
    ``refine.npy``, no 8-bit files, the manifest's checksums to match."""
    gen = (root / "current").resolve()
    for name in ivf.FILES_Q8:
        (gen / name).unlink()
    np.save(gen / ivf.FILE_F16, xb_by_position.astype(np.float16))
    man = json.loads((gen / "manifest.json").read_text())
    man["checksums"] = {k: v for k, v in man["checksums"].items() if k not in ivf.FILES_Q8}
    man["checksums"][ivf.FILE_F16] = sha256_file(gen / ivf.FILE_F16)
    (gen / "manifest.json").write_text(json.dumps(man))


def test_float16_vectors_are_served_added_to_and_saved_again_as_float16(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    xb, xq = data
    seqs = seqs_for(len(xb))
    template = ivf.train_ivfpq(xb[:10_000], nlist=64)
    shard(template, xb[:15_000], seqs[:15_000]).save(tmp_path, "head:x", "head:x", 0)
    _as_written_before(tmp_path, xb[:15_000])
    old, _ = VectorIndex.load(tmp_path, mapped=True)
    assert old.refine.scale is None and old.refine.codes.dtype == np.float16
    D_, L = old.search(xq, 10)
    pos = old.positions(L.ravel()).reshape(L.shape)
    np.testing.assert_allclose(D_, np.einsum("qd,qkd->qk", xq, xb[pos]), atol=2e-4)  # float16: near exact
    _, I_ref = brute_force(xq, xb[:15_000], 10)
    assert recall(L, seqs[I_ref]) >= 0.95
    # an in-place sync of it keeps its precision: accounts added, or only removed
    for added in (slice(15_000, 20_000), slice(0, 0)):
        root = tmp_path / f"sync-{added.stop}"
        shard(template, xb[:15_000], seqs[:15_000]).save(root, "head:x", "head:x", 0)
        _as_written_before(root, xb[:15_000])
        index, _ = VectorIndex.load(root)
        assert index.refine.scale is None and index.refine_bits == 16
        index.remove(seqs[:50])
        if added.stop:
            index.add(seqs[added], np.ones(len(seqs[added]), np.int64), xb[added])
        index.save(root, "head:x", "head:x", 0)
        again, _ = VectorIndex.load(root, mapped=True)
        assert again.refine_bits == 16 and again.refine.codes.dtype == np.float16
        assert len(again.refine) == len(index.labels)
        n = 20_000 if added.stop else 15_000
        ok = np.zeros(len(xb), bool)
        ok[50:n] = True
        D_, L = again.search(xq, 10)
        pos = again.positions(L.ravel()).reshape(L.shape)
        np.testing.assert_allclose(D_, np.einsum("qd,qkd->qk", xq, xb[pos]), atol=2e-4)  # still float16
        _, I_ref = brute_force(xq, xb, 10, ok)
        assert recall(L, seqs[I_ref]) >= 0.95 and not set(L.ravel().tolist()) & set(seqs[:50].tolist())
