"""What the partner memory (issue 36) costs a match: the head's rerank of one brand's 200
candidates, without a memory and with memories of growing size, paired in one process.

The head is seeded and untrained (weights do not change the cost); memories are random unit
vectors of the head's space: ``brands`` training brands of ``posts`` posts and ``partners``
partners each. A rerank is ``CongruenceHead.score`` on one thread, as serving runs it
(``search.rerank.one_thread``). The 1M match's head forward measured 2.2 ms at p50 (docs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.common import Row, Section, Table, sample_ab, stats


@dataclass(frozen=True)
class MemoryBenchConfig:
    candidates: int = 200
    candidate_posts: int = 12
    brand_posts: int = 12
    d_model: int = 256
    sizes: tuple[int, ...] = (40, 200, 1000, 4000)  # memory brands
    posts: int = 20
    partners: int = 15
    calls: int = 200
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> MemoryBenchConfig:
        return cls(sizes=(40, 200), calls=30) if quick else cls()


def run(cfg: MemoryBenchConfig) -> Section:
    from congruence.search.rerank import one_thread
    from congruence.training.model import CongruenceHead, HeadConfig

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    def unit(*shape: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1)

    config = HeadConfig(d_image=1280, d_text=384, d_model=cfg.d_model)
    plain = CongruenceHead(config).eval()
    brands = unit(1, cfg.brand_posts, cfg.d_model)
    bmask = torch.ones(1, cfg.brand_posts, dtype=torch.bool)
    cands = unit(1, cfg.candidates, cfg.candidate_posts, cfg.d_model)
    cmask = torch.ones(1, cfg.candidates, cfg.candidate_posts, dtype=torch.bool)
    rows: list[Row] = []
    with one_thread(), torch.no_grad():
        for k in cfg.sizes:
            head = CongruenceHead(config).eval()
            head.load_state_dict(
                {n: v for n, v in plain.state_dict().items() if not n.startswith("mem_")}, strict=False
            )
            owner = torch.arange(k).repeat_interleave(cfg.posts)
            powner = torch.arange(k).repeat_interleave(cfg.partners)
            head.set_memory(unit(k * cfg.posts, cfg.d_model), owner, unit(k * cfg.partners, cfg.d_model), powner, 8.0)

            def without(_i: int) -> object:
                return plain.score(brands, bmask, cands, cmask)

            def with_memory(_i: int, h: CongruenceHead = head) -> object:
                return h.score(brands, bmask, cands, cmask)

            ta, tb = sample_ab(without, with_memory, cfg.calls)
            a, b = stats(ta), stats(tb)
            rows.append(
                {
                    "memory brands": head.memory_brands,
                    "memory posts": int(head.mem_posts.shape[0]),
                    "partners": int(head.mem_partners.shape[0]),
                    "no memory p50 ms": round(a.median_ms, 3),
                    "with memory p50 ms": round(b.median_ms, 3),
                    "with memory p99 ms": round(b.p99_ms, 3),
                    "ratio (paired medians)": round(float(np.median(tb / ta[: len(tb)])), 2),
                }
            )
    return Section(
        "head-memory",
        [Table(f"head rerank of {cfg.candidates} candidates x {cfg.candidate_posts} posts, one thread", rows)],
        notes=[
            f"brand of {cfg.brand_posts} posts; memory brands of {cfg.posts} posts and {cfg.partners} partners each; "
            f"the score uses the top {config.memory_top} memory brands; {cfg.calls} paired calls per size"
        ],
        details={"rows": rows, "config": cfg.__dict__},
    )
