"""VectorIndex and Filters against brute force on seeded synthetic data (faiss contrib style).

Names follow faiss: ``xb`` database, ``xq`` queries, ``nb, nq, d, k``; the index returns
``(D, L)`` where L are the accounts' seqs, not positions.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from congruence.core.errors import InvalidInput
from congruence.core.vectors import l2_normalize
from congruence.datasets.synthetic import SyntheticDataset
from congruence.indexer import index as index_mod
from congruence.indexer.index import SUBSET_FRACTION, IndexCorrupt, Manifest, VectorIndex
from congruence.search.filters import MICRO, Filters
from congruence.store.rows import AccountTable

# -- synthetic data and brute force --------------------------------------------------------


@pytest.fixture(autouse=True)
def _share_rule_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These indexes are small enough for every filter to be scanned exactly (the absolute
    budget, EXACT_SCAN_FLOATS); turn that off so the graph paths are the ones tested here.
    tests/test_index_codecs.py tests the budget."""
    monkeypatch.setattr(index_mod, "EXACT_SCAN_FLOATS", 0)


def synthetic(nb: int, nq: int, d: int, seed: int, **kw: int) -> tuple[np.ndarray, np.ndarray]:
    """(xb, xq) of a seeded ``SyntheticDataset``: clustered, L2-normalised float32 rows."""
    ds = SyntheticDataset(d, nb, nq, seed, **kw)
    return ds.xb, ds.xq


def seqs_for(nb: int) -> np.ndarray:
    """Non-contiguous seqs, so a position returned as a label would be caught."""
    return 1000 + 3 * np.arange(nb, dtype=np.int64)


def brute_force(
    xq: np.ndarray, xb: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(D, I): exact inner-product top-k over the rows of xb passing ``allowed``."""
    scores = xq.astype(np.float64) @ xb.astype(np.float64).T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def recall(L: np.ndarray, L_ref: np.ndarray) -> float:
    k = L_ref.shape[1]
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(L, L_ref, strict=True)]))


def build(kind: str, xb: np.ndarray, seqs: np.ndarray, codec: str = "float32") -> VectorIndex:
    index = VectorIndex(xb.shape[1], kind, codec)
    index.add(seqs, np.ones(len(seqs), np.int64), xb)
    return index


@pytest.fixture(scope="module")
def hnsw_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xb, xq = synthetic(nb=5000, nq=30, d=32, seed=1)
    return xb, xq, seqs_for(len(xb))


@pytest.fixture(scope="module")
def hnsw_index(hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VectorIndex:
    """Shared and read-only: tests that remove build their own."""
    xb, _, seqs = hnsw_data
    return build("hnsw", xb, seqs)


# -- flat: exact ------------------------------------------------------------------------------


def test_flat_equals_brute_force() -> None:
    nb, nq, d, k = 2000, 20, 32, 10
    xb, xq = synthetic(nb, nq, d, seed=0)
    seqs = seqs_for(nb)
    D, L = build("flat", xb, seqs).search(xq, k)
    D_ref, I_ref = brute_force(xq, xb, k)
    np.testing.assert_array_equal(L, seqs[I_ref])
    np.testing.assert_allclose(D, D_ref, rtol=1e-5, atol=1e-5)
    assert D.dtype == np.float32 and L.dtype == np.int64


def test_flat_with_tombstones_and_filter_equals_brute_force() -> None:
    nb, nq, d, k = 2000, 20, 32, 10
    xb, xq = synthetic(nb, nq, d, seed=2)
    seqs = seqs_for(nb)
    index = build("flat", xb, seqs)
    rng = np.random.default_rng(3)
    dead = rng.choice(nb, 300, replace=False)
    assert index.remove(seqs[dead]) == 300
    allowed = rng.random(nb) < 0.5
    live = np.ones(nb, bool)
    live[dead] = False
    for mask in (None, allowed):
        D, L = index.search(xq, k, allowed=mask)
        D_ref, I_ref = brute_force(xq, xb, k, live if mask is None else live & mask)
        np.testing.assert_array_equal(L, seqs[I_ref])
        np.testing.assert_allclose(D, D_ref, rtol=1e-5, atol=1e-5)


def test_labels_are_seqs_not_positions() -> None:
    nb, d = 50, 8
    xb, _ = synthetic(nb, 1, d, seed=4)
    seqs = seqs_for(nb)
    for kind in ("flat", "hnsw"):
        index = build(kind, xb, seqs)
        D, L = index.search(xb, 1)  # each vector's nearest neighbour is itself
        np.testing.assert_array_equal(L[:, 0], seqs)
        np.testing.assert_allclose(D[:, 0], 1.0, atol=1e-5)
        np.testing.assert_array_equal(index.positions(seqs), np.arange(nb))
        np.testing.assert_array_equal(index.positions(np.array([0, 1, 1001, 10**9, -5])), [-1, -1, -1, -1, -1])


# -- hnsw: approximate --------------------------------------------------------------------------


def test_hnsw_recall_at_10(hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray], hnsw_index: VectorIndex) -> None:
    xb, xq, seqs = hnsw_data
    D, L = hnsw_index.search(xq, 10)
    D_ref, I_ref = brute_force(xq, xb, 10)
    assert recall(L, seqs[I_ref]) >= 0.95
    assert (L >= 0).all()
    assert (np.diff(D, axis=1) <= 1e-6).all()  # best first


# -- remove and replace ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_seqs_never_come_back(kind: str) -> None:
    nb, d = 500, 16
    xb, _ = synthetic(nb, 1, d, seed=5)
    seqs = seqs_for(nb)
    index = build(kind, xb, seqs)
    gone = seqs[::7]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0  # already dead
    assert index.n_alive == nb - len(gone) and index.n_dead == len(gone)
    # query with the removed vectors themselves: they would be their own best match
    D, L = index.search(xb[::7], 20)
    assert not np.isin(L, gone).any()
    assert (L >= 0).all()
    np.testing.assert_array_equal(index.positions(gone), -1)
    assert set(index.live_versions()) == set(seqs.tolist()) - set(gone.tolist())


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_existing_seq_replaces_vector(kind: str) -> None:
    nb, d = 300, 16
    xb, _ = synthetic(nb, 1, d, seed=6)
    seqs = seqs_for(nb)
    index = build(kind, xb, seqs)
    target = int(seqs[10])
    new_vec = l2_normalize(-xb[10:11])  # the opposite direction: far from the old vector
    index.add(np.array([target]), np.array([7]), new_vec)
    assert index.n_alive == nb and index.ntotal == nb + 1
    assert index.live_versions()[target] == 7
    D, L = index.search(new_vec, nb)
    assert (target == L).sum() == 1
    assert L[0, 0] == target and D[0, 0] == pytest.approx(1.0, abs=1e-5)
    D, L = index.search(xb[10:11], 5)  # the old vector no longer finds it
    assert target not in L[0].tolist()


def test_seq_repeated_in_one_batch_is_stored_once() -> None:
    rng = np.random.default_rng(7)
    index = VectorIndex(4)
    index.add(np.array([5, 5]), np.array([1, 2]), l2_normalize(rng.normal(size=(2, 4))))
    D, L = index.search(rng.normal(size=(1, 4)), 5)
    assert (L == 5).sum() == 1
    assert index.n_alive == 1
    index.remove(np.array([5]))
    assert index.n_alive == 0


def test_threads_of_one_process_save_the_same_index_root_at_once(tmp_path: Path) -> None:
    """An ingest and a serving engine can save generations in one process at the same time:
    no save may take another's temporary files, and `current` ends on a whole generation."""
    rng = np.random.default_rng(3)
    index = VectorIndex(4)
    index.add(np.arange(20), np.ones(20, np.int64), l2_normalize(rng.normal(size=(20, 4))))
    errors: list[BaseException] = []

    def saves() -> None:
        try:
            for _ in range(30):
                index.save(tmp_path, "pooled", "m", 1)
        except BaseException as e:  # noqa: BLE001 - raised in the test body below
            errors.append(e)

    threads = [threading.Thread(target=saves) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"{len(errors)} of 4 saving threads failed: {errors[0]!r}") from errors[0]
    loaded, manifest = VectorIndex.load(tmp_path)
    assert loaded.n_alive == 20 and manifest.space == "pooled"


# -- filtered search ------------------------------------------------------------------------------


def check_filtered(
    index: VectorIndex,
    xq: np.ndarray,
    xb: np.ndarray,
    seqs: np.ndarray,
    allowed: np.ndarray,
    live: np.ndarray,
    k: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Search with ``allowed``; check count and membership; return (L, reference L)."""
    ok = allowed & live
    n_ok = int(ok.sum())
    D, L = index.search(xq, k, allowed=allowed)
    want = min(k, n_ok)
    assert ((L >= 0).sum(axis=1) == want).all(), "a query came back short"
    assert (L[:, want:] == -1).all() and np.isneginf(D[:, want:]).all()
    assert np.isin(L[:, :want], seqs[ok]).all(), "a label outside the allowed live set"
    assert all(len(set(row[:want].tolist())) == want for row in L), "a label returned twice"
    _, I_ref = brute_force(xq, xb, want, ok)
    return L[:, :want], seqs[I_ref]


def test_hnsw_selective_filter_is_exact(
    hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray], hnsw_index: VectorIndex
) -> None:
    xb, xq, seqs = hnsw_data
    allowed = np.zeros(len(xb), bool)
    allowed[np.random.default_rng(8).choice(len(xb), 7, replace=False)] = True
    assert allowed.sum() < SUBSET_FRACTION * len(xb)
    L, L_ref = check_filtered(hnsw_index, xq, xb, seqs, allowed, np.ones(len(xb), bool))
    np.testing.assert_array_equal(L, L_ref)


def test_hnsw_broad_filter_recall(
    hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray], hnsw_index: VectorIndex
) -> None:
    xb, xq, seqs = hnsw_data
    allowed = np.random.default_rng(9).random(len(xb)) < 0.6
    L, L_ref = check_filtered(hnsw_index, xq, xb, seqs, allowed, np.ones(len(xb), bool))
    assert recall(L, L_ref) >= 0.9


@pytest.mark.parametrize("n_allowed", [3, 7, 260, 600])
def test_hnsw_filter_just_above_subset_threshold_never_starves(
    hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray], hnsw_index: VectorIndex, n_allowed: int
) -> None:
    """260 and 600 pass more than SUBSET_FRACTION, so they go through the graph with a selector."""
    xb, xq, seqs = hnsw_data
    allowed = np.zeros(len(xb), bool)
    allowed[np.random.default_rng(n_allowed).choice(len(xb), n_allowed, replace=False)] = True
    L, L_ref = check_filtered(hnsw_index, xq, xb, seqs, allowed, np.ones(len(xb), bool))
    assert recall(L, L_ref) >= 0.9


def test_hnsw_tiny_filter_forced_through_graph_never_starves(
    hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray], hnsw_index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the exact shortcut off, 7 allowed out of 5000 go through HNSW and its fallback."""
    monkeypatch.setattr(index_mod, "SUBSET_FRACTION", 0.0)
    xb, xq, seqs = hnsw_data
    allowed = np.zeros(len(xb), bool)
    allowed[np.random.default_rng(10).choice(len(xb), 7, replace=False)] = True
    exact = hnsw_index._exact
    fallback_rows: list[int] = []

    def spy(xq_: np.ndarray, *args: object) -> tuple[np.ndarray, np.ndarray]:
        fallback_rows.append(len(xq_))
        return exact(xq_, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(hnsw_index, "_exact", spy)
    L, L_ref = check_filtered(hnsw_index, xq, xb, seqs, allowed, np.ones(len(xb), bool))
    np.testing.assert_array_equal(L, L_ref)
    assert fallback_rows and sum(fallback_rows) < len(xq)  # the short queries, and only those, went exact


def test_hnsw_filters_with_tombstones(hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    xb, xq, seqs = hnsw_data
    nb = len(xb)
    index = build("hnsw", xb, seqs)
    rng = np.random.default_rng(11)
    dead = rng.choice(nb, 1500, replace=False)
    index.remove(seqs[dead])
    live = np.ones(nb, bool)
    live[dead] = False
    # no filter: the tombstones alone act as a filter
    L, L_ref = check_filtered(index, xq, xb, seqs, np.ones(nb, bool), live)
    assert recall(L, L_ref) >= 0.9
    D, L_none = index.search(xq, 10)
    assert not np.isin(L_none, seqs[dead]).any()
    # broad
    broad = rng.random(nb) < 0.6
    L, L_ref = check_filtered(index, xq, xb, seqs, broad, live)
    assert recall(L, L_ref) >= 0.9
    # selective: 7 allowed, 3 of them dead -> exactly 4 results
    sel = np.zeros(nb, bool)
    sel[dead[:3]] = True
    sel[rng.choice(np.flatnonzero(live), 4, replace=False)] = True
    L, L_ref = check_filtered(index, xq, xb, seqs, sel, live)
    assert L.shape[1] == 4
    np.testing.assert_array_equal(L, L_ref)


def test_filter_passing_nothing_gives_only_padding(
    hnsw_index: VectorIndex, hnsw_data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, xq, _ = hnsw_data
    D, L = hnsw_index.search(xq, 10, allowed=np.zeros(hnsw_index.ntotal, bool))
    assert L.shape == (len(xq), 10) and (L == -1).all() and np.isneginf(D).all()


# -- k beyond the live count ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_k_larger_than_live_count_pads_with_minus_one(kind: str) -> None:
    nb, d, k = 12, 8, 20
    xb, xq = synthetic(nb, 3, d, seed=12)
    seqs = seqs_for(nb)
    index = build(kind, xb, seqs)
    index.remove(seqs[:4])
    D, L = index.search(xq, k)
    assert L.shape == D.shape == (3, k)
    assert (L[:, :8] >= 0).all() and (L[:, 8:] == -1).all()
    assert np.isneginf(D[:, 8:]).all() and np.isfinite(D[:, :8]).all()
    for row in L:
        assert sorted(row[:8].tolist()) == sorted(seqs[4:].tolist())


def test_empty_index_search() -> None:
    index = VectorIndex(8, "hnsw")
    D, L = index.search(np.ones((2, 8), np.float32), 5)
    assert (L == -1).all() and L.shape == (2, 5)


def test_bad_kind_and_bad_query_width() -> None:
    with pytest.raises(ValueError, match=re.escape("index kind must be flat, hnsw or ivfpq, got 'ivf'")):
        VectorIndex(8, "ivf")
    index = VectorIndex(8)
    with pytest.raises(ValueError, match=re.escape("query vectors: expected 8 dimensions, not 7")):
        index.search(np.ones((1, 7), np.float32), 3)
    with pytest.raises(ValueError, match=re.escape("index vectors: expected 8 dimensions, not 9")):
        index.add([1], [1], np.ones((1, 9), np.float32))


# -- persistence ------------------------------------------------------------------------------------


def generations(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("gen-*") if p.is_dir())


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    nb, nq, d, k = 800, 10, 16, 10
    xb, xq = synthetic(nb, nq, d, seed=13, n_clusters=10)
    seqs = seqs_for(nb)
    index = VectorIndex(d, kind)
    index.add(seqs, np.arange(nb, dtype=np.int64) % 5 + 1, xb)
    index.remove(seqs[::9])
    allowed = np.random.default_rng(14).random(nb) < 0.5
    man = index.save(tmp_path, "image", "clip-b32", version_sum=1234)
    loaded, man2 = VectorIndex.load(tmp_path)
    assert man2 == man
    assert (man.space, man.model, man.dim, man.kind, man.count, man.version_sum) == (
        "image",
        "clip-b32",
        d,
        kind,
        index.n_alive,
        1234,
    )
    assert set(man.checksums) == {"index.faiss", "labels.npy", "versions.npy", "alive.npy"}
    assert loaded.live_versions() == index.live_versions()
    np.testing.assert_array_equal(loaded.labels, index.labels)
    np.testing.assert_array_equal(loaded.alive, index.alive)
    for mask in (None, allowed):
        D1, L1 = index.search(xq, k, allowed=mask)
        D2, L2 = loaded.search(xq, k, allowed=mask)
        np.testing.assert_array_equal(L1, L2)
        np.testing.assert_array_equal(D1, D2)
    # the loaded index keeps working: replace and remove
    loaded.add(seqs[:1], [99], xb[:1])
    loaded.remove(seqs[1:2])
    assert loaded.live_versions()[int(seqs[0])] == 99 and int(seqs[1]) not in loaded.live_versions()
    assert json.loads((tmp_path / "current" / "manifest.json").read_text())["count"] == index.n_alive


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    xb, _ = synthetic(100, 1, 8, seed=15)
    build("flat", xb, seqs_for(100)).save(tmp_path, "image", "m", 100)
    return tmp_path


def test_load_refuses_a_flipped_byte(saved: Path) -> None:
    f = saved / "current" / "index.faiss"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=re.escape(f"{f.resolve()} fails its checksum")):
        VectorIndex.load(saved)


def test_load_refuses_missing_labels(saved: Path) -> None:
    (saved / "current" / "labels.npy").unlink()
    with pytest.raises(IndexCorrupt, match=re.escape(f"cannot read the index under {saved}: ")):
        VectorIndex.load(saved)


def test_load_refuses_missing_current_link(saved: Path) -> None:
    (saved / "current").unlink()
    with pytest.raises(IndexCorrupt, match=re.escape(f"cannot read the index under {saved}: ")):
        VectorIndex.load(saved)


def test_load_refuses_bad_manifest(saved: Path) -> None:
    (saved / "current" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match=re.escape(f"cannot read the index under {saved}: ")):
        VectorIndex.load(saved)


def test_load_of_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(tmp_path / "nothing")


def test_second_save_switches_current_and_prunes(tmp_path: Path) -> None:
    d = 8
    xb, xq = synthetic(60, 2, d, seed=16)
    seqs = seqs_for(60)
    index = build("flat", xb[:30], seqs[:30])
    man1 = index.save(tmp_path, "image", "m", 30)
    gen1 = (tmp_path / "current").resolve()
    index.add(seqs[30:], np.ones(30, np.int64), xb[30:])
    man2 = index.save(tmp_path, "image", "m", 60)
    gen2 = (tmp_path / "current").resolve()
    assert gen1 != gen2 and gen1.exists()  # the previous generation stays for readers mid-load
    assert (tmp_path / "current").is_symlink()
    assert os.readlink(tmp_path / "current") == gen2.name  # relative link: the folder can move
    assert (man1.count, man2.count) == (30, 60)
    loaded, man = VectorIndex.load(tmp_path)
    assert man == man2 and loaded.n_alive == 60
    np.testing.assert_array_equal(loaded.search(xq, 5)[1], index.search(xq, 5)[1])
    for _ in range(3):
        index.save(tmp_path, "image", "m", 60)
    gens = generations(tmp_path)
    assert len(gens) <= 2
    assert (tmp_path / "current").resolve() in gens
    assert not list(tmp_path.glob("*.tmp")), "a temporary link or folder was left behind"
    assert VectorIndex.load(tmp_path)[1].count == 60


def test_manifest_is_frozen(saved: Path) -> None:
    man = VectorIndex.load(saved)[1]
    assert isinstance(man, Manifest)
    with pytest.raises(AttributeError):
        man.count = 0  # type: ignore[misc]


# -- Filters ---------------------------------------------------------------------------------------


def test_filters_min_greater_than_max() -> None:
    with pytest.raises(InvalidInput) as e:
        Filters.make(min_followers=10, max_followers=5)
    assert str(e.value) == "min_followers (10) is greater than the maximum follower count (5)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_followers": -1}, "min_followers must be a non-negative whole number, got -1"),
        ({"max_followers": 1.5}, "max_followers must be a non-negative whole number, got 1.5"),
        ({"min_followers": True}, "min_followers must be a non-negative whole number, got True"),
        ({"min_followers": "10"}, "min_followers must be a non-negative whole number, got '10'"),
        ({"category": "x" * 101}, "category is longer than 100 characters"),
        (
            {"micro": True, "min_followers": 200_000},
            "min_followers (200000) leaves no micro-influencer: they have 5,000-100,000 followers",
        ),
    ],
)
def test_filters_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        Filters.make(**kwargs)
    assert str(e.value) == message


def test_filters_make() -> None:
    assert MICRO == (5_000, 100_000)
    assert Filters.make(micro=True) == Filters(None, 5_000, 100_000)
    assert Filters.make(micro=True, min_followers=20_000, max_followers=1_000_000) == Filters(None, 20_000, 100_000)
    assert Filters.make(category="  Fashion ") == Filters("fashion", None, None)
    assert Filters.make(category="   ") == Filters(None, None, None)
    assert not Filters.make().active and Filters.make(min_followers=0).active


@pytest.fixture
def table_and_index() -> tuple[AccountTable, VectorIndex]:
    seq = np.array([10, 20, 30, 40, 50, 60], np.int64)
    table = AccountTable(
        seq=seq,
        ids=["a", "b", "c", "d", "e", "f"],
        handles=["a", "b", "c", "d", "e", "f"],
        categories=["fashion", "food", "fashion", "fashion", "travel", "fashion"],
        followers=np.array([4_999, 5_000, 100_000, 100_001, 50_000, -1], np.int64),
    )
    xb, _ = synthetic(7, 1, 4, seed=17)
    index = VectorIndex(4)
    # positions differ from table order; seq 70 is in the index only, seq 60 was removed
    index.add(np.array([60, 30, 70, 10, 50, 20, 40]), np.ones(7, np.int64), xb)
    index.remove(np.array([60]))
    return table, index


def selected(mask: np.ndarray, index: VectorIndex) -> set[int]:
    return set(index.labels[mask].tolist())


def test_filters_mask_selects_expected_seqs(table_and_index: tuple[AccountTable, VectorIndex]) -> None:
    table, index = table_and_index
    assert Filters.make().mask(table, index) is None
    np.testing.assert_array_equal(Filters.make(micro=True).rows(table), [False, True, True, False, True, False])
    assert selected(Filters.make(micro=True).mask(table, index), index) == {20, 30, 50}
    assert selected(Filters.make(category="FASHION").mask(table, index), index) == {10, 30, 40}
    assert selected(Filters.make(category="fashion", micro=True).mask(table, index), index) == {30}
    assert selected(Filters.make(max_followers=10**9).mask(table, index), index) == {10, 20, 30, 40, 50}
    assert selected(Filters.make(category="fashion").mask(table, index, exclude=np.array([40])), index) == {10, 30}
    # exclude alone still filters; the index-only seq 70 is not in the table so never passes
    assert selected(Filters.make().mask(table, index, exclude=np.array([20, 999])), index) == {10, 30, 40, 50}
    mask = Filters.make(micro=True).mask(table, index)
    assert mask.shape == (index.ntotal,) and mask.dtype == bool


def test_filters_mask_drives_search(table_and_index: tuple[AccountTable, VectorIndex]) -> None:
    table, index = table_and_index
    mask = Filters.make(category="fashion").mask(table, index, exclude=np.array([10]))
    xq = np.ones((1, 4), np.float32)
    D, L = index.search(xq, 5, allowed=mask)
    pos = index.positions(np.array([30, 40]))
    scores = (index.vectors()[pos] @ xq[0]).tolist()
    want = [s for _, s in sorted(zip(scores, [30, 40], strict=True), reverse=True)]
    assert L[0].tolist() == [*want, -1, -1, -1]
    np.testing.assert_allclose(D[0, :2], sorted(scores, reverse=True), rtol=1e-5)
