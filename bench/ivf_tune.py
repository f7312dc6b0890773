"""How many lists to probe and how many PQ candidates to re-score, chosen on held-out queries:
``python -m bench.ivf_tune [--n 2500000] [--nlist 4096]``.

One shard's worth of the scale benchmark's corpus (``bench.scale``: accounts of 4 posts
around a theme, pooled, 256-d), an IVF-PQ index as the shards build it (quantiser and
codebook trained on a separate sample), and two query sets drawn with seeds the benchmark
does not use: **tuning** queries, on which the settings are chosen, and **check** queries,
on which the chosen setting is reported once. Recall@k is against exact search over the
same float32 vectors, in this shard; a shard's top 10 found exactly is what the merged
answer of all shards needs from it.

The sweep reports, per (code bytes m, nprobe, re-score breadth k + extra) and per k (10:
an answer; 200: the head's candidates): recall@k and the median time of a one-query search
(PQ scan plus the re-score from 8-bit vectors, as the shards keep them). The choice, per m,
is the cheapest (nprobe, extra) whose tuning recall is at least ``--target`` + 0.01 at both
k (a margin for the queries it was not chosen on); its recall on the check queries is then
reported once.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.scale import D, pool_posts, theme_posts
from congruence.datasets.synthetic import SyntheticDataset
from congruence.indexer import ivf

POSTS = 4
MS = (32, 64)
NPROBES = (32, 64, 128)
EXTRAS = (200, 400, 800, 1600, 3200)
KS = (10, 200)


def _truth(xq: np.ndarray, xb: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(xq), k), np.int64)
    for i in range(0, len(xq), 50):
        s = xq[i : i + 50] @ xb.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        out[i : i + 50] = np.take_along_axis(top, order, axis=1)
    return out


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
    )


def run(n: int, nlist: int, queries: int, target: float, bits: int = 8) -> dict[str, object]:
    space = SyntheticDataset(D, 0, 0, 0)
    sample = pool_posts(theme_posts(space, 40 * nlist, POSTS, np.random.default_rng(7)), POSTS)
    xb = np.concatenate(
        [
            pool_posts(theme_posts(space, min(100_000, n - s), POSTS, np.random.default_rng([0, 99, s])), POSTS)
            for s in range(0, n, 100_000)
        ]
    )
    refine = ivf.RefineVectors.of(xb, bits)  # as the shards keep them
    tune_q = pool_posts(theme_posts(space, queries, POSTS, np.random.default_rng(1001)), POSTS)
    check_q = pool_posts(theme_posts(space, queries, POSTS, np.random.default_rng(2002)), POSTS)
    kmax = max(KS)
    tune_t, check_t = _truth(tune_q, xb, kmax), _truth(check_q, xb, kmax)
    rows, chosen = [], {}
    for m in MS:
        index = ivf.train_ivfpq(sample, nlist, m)
        index.add(xb)
        threads = ivf.faiss.omp_get_max_threads()
        ivf.faiss.omp_set_num_threads(1)  # one query, one thread: as a shard replica searches
        mine = []
        for nprobe in NPROBES:
            for extra in EXTRAS:
                row: dict[str, float] = {"m": m, "nprobe": nprobe, "extra": extra}
                for k in KS:
                    _, P = ivf.search(index, refine, tune_q, k, None, nprobe=nprobe, extra=extra)
                    lat = []
                    for q in tune_q[:50]:
                        t = time.perf_counter()
                        ivf.search(index, refine, q[None], k, None, nprobe=nprobe, extra=extra)
                        lat.append(time.perf_counter() - t)
                    row[f"recall@{k}"] = _recall(P, tune_t[:, :k])
                    row[f"p50_ms@{k}"] = 1e3 * float(np.median(lat))
                mine.append(row)
                print(json.dumps(row), flush=True)
        ok = [r for r in mine if all(r[f"recall@{k}"] >= target + 0.01 for k in KS)]
        best = min(ok, key=lambda r: r["p50_ms@200"]) if ok else max(mine, key=lambda r: r["recall@10"])
        check = {}
        for k in KS:
            _, P = ivf.search(index, refine, check_q, k, None, nprobe=int(best["nprobe"]), extra=int(best["extra"]))
            check[f"check_recall@{k}"] = _recall(P, check_t[:, :k])
        chosen[m] = {**best, **check, "met": bool(ok)}
        rows += mine
        ivf.faiss.omp_set_num_threads(threads)
        del index
    return {"n": n, "nlist": nlist, "queries": queries, "bits": bits, "sweep": rows, "chosen": chosen}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2_500_000)
    p.add_argument("--nlist", type=int, default=4096)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="the re-score vectors' precision")
    p.add_argument("--out", type=Path, default=Path("bench/results/ivf_tune.json"))
    a = p.parse_args()
    out = run(a.n, a.nlist, a.queries, a.target, a.bits)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["chosen"]))


if __name__ == "__main__":
    main()
