"""Match latency with the trained head: FAISS retrieval alone vs. retrieval + rerank of N.

Runs against a store that already has a head in service (e.g. the ranking benchmark's
home after `congruence train`). Timings are paired: for each brand both paths run back to
back in the same process, so the ratio is meaningful on a noisy shared machine.

    python -m bench.rerank_latency --home bench/.cache/photos-home [--brands 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from congruence.core.settings import Settings
from congruence.search.engine import Engine


def measure(settings: Settings, n_brands: int = 50, k: int = 20, repeats: int = 3) -> dict[str, object]:
    with Engine(settings) as engine:
        snap = engine.snapshot
        if snap.head is None:
            raise SystemExit("no congruence head in service: run `congruence train` on this store first")
        brands = engine.brand_ids()[:n_brands]
        faiss_ms, rerank_ms = [], []
        for brand in brands:
            engine.match_brand(brand, k=k)  # warm caches once per brand
            for _ in range(repeats):
                t = time.perf_counter()
                q = engine.entry(snap, brand, "brand").vector
                engine.retrieve(snap, q[None, :], k)  # no brand posts: FAISS (and any exact re-score), no rerank
                faiss_ms.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                engine.match_brand(brand, k=k)
                rerank_ms.append(1000 * (time.perf_counter() - t))
        med_f, med_r = statistics.median(faiss_ms), statistics.median(rerank_ms)
        return {
            "brands": len(brands),
            "k": k,
            "candidates": settings.candidates,
            "index": {"kind": snap.index.kind, "size": snap.index.n_alive, "dim": snap.index.dim},
            "faiss_only_ms": {"p50": round(med_f, 2), "p90": round(_p(faiss_ms, 0.9), 2)},
            "faiss_plus_rerank_ms": {"p50": round(med_r, 2), "p90": round(_p(rerank_ms, 0.9), 2)},
            "rerank_cost_ratio": round(med_r / med_f, 2),
        }


def _p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rerank_latency", description=__doc__)
    p.add_argument("--home", type=Path, required=True, help="CONGRUENCE_HOME of a store with a head in service")
    p.add_argument("--brands", type=int, default=50)
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "rerank-latency.json")
    args = p.parse_args(argv)
    settings = Settings(home=args.home.absolute(), candidates=args.candidates)
    result = measure(settings, args.brands)
    print(f"{'path':<22} {'p50 ms':>8} {'p90 ms':>8}")
    for name in ("faiss_only_ms", "faiss_plus_rerank_ms"):
        row = result[name]
        assert isinstance(row, dict)
        print(f"{name.removesuffix('_ms'):<22} {row['p50']:>8} {row['p90']:>8}")
    print(f"rerank of {args.candidates} candidates costs {result['rerank_cost_ratio']}x FAISS-only ({result['index']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
