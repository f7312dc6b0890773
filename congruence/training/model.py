"""The congruence head: per-post projection, pooling over an account's posts, pair score.

After Elwood, Gasparin & Rozza (IEEE ISM 2021): frozen per-post image+text embeddings
go through a trainable projection; a learned pooling turns an account's posts into one
vector; a similarity head scores a (brand, influencer) pair from their post sets; an
auxiliary classifier predicts the account's category from its pooled vector.

Towers. ``shared`` (the paper's): brands and influencers go through one projection and one
pooling, so the score is symmetric and can only learn "looks alike". ``two``: the brand
tower is the shared projection plus a residual adapter, and the shared pooling query plus
a residual, both zero at the start: a new head scores as the shared one, weight decay pulls
the brand tower back to "looks alike" wherever brands show nothing else, and where they do
(a brand that photographs bottles partners with football creators, not with the creators
who post bottles) the adapter learns it. On the photo benchmark (30 epochs, seed 0) this
kept direct brands at 0.990 held-out AUC (shared head 0.992) with look-alike brands at
0.977; a separate brand projection (a copy of the influencer side's at the start) reached
0.991 on look-alikes but let direct brands fall to 0.977, and tying that copy to the
influencer side (an L2 penalty) held direct brands (0.994) but lost look-alikes (0.921).
FAISS holds influencer-tower vectors; a brand queries with its brand-tower vector.

Partner memory (issue 36). The head also keeps the training brands' evidence: each training
brand's post projections (brand tower) and its partners' pooled vectors (influencer tower),
set after training (``set_memory``, ``training.memory``). A brand's posts are matched to each
memory brand's posts (each post's best match, averaged); a softmax at
``memory_temperature`` over the memory brands weighs them; a candidate's memory score is the
weighted sum of its best cosine to each one's partners. ``mem_weight`` (learned on training
brands the scoring head never saw) adds it to the score. Two training brands a vertical pair
cannot teach the towers a class-to-class map; the memory needs no map, it follows the
partners of the brands that post what this brand posts. It is a term of ``score_sets``, so
every path that scores with the head (rerank, export, feedback, shards) scores with it.

Shapes: d_in = d_image + d_text; d = d_model. Per-post projections and pooled vectors
are L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from congruence.store.postsets import PostSets
from congruence.training.head_config import POOLINGS, TOWERS, HeadConfig, MetaValue
from congruence.training.sets import as_float_tensor, masked_mean, masked_softmax, pad_posts, pad_sets

__all__ = ["POOLINGS", "TOWERS", "CongruenceHead", "HeadConfig", "MetaValue", "brand_accounts"]


class CongruenceHead(nn.Module):
    """Scores (brand, influencer) pairs from their sets of frozen post embeddings.

    Attributes set by training or loading: ``categories`` (the classifier's vocabulary),
    ``train_brands`` (brand ids seen in training, for leak checks), ``meta`` and ``version``.
    The numpy helpers (``project_posts``, ``encode_accounts``, ``score_candidates``) switch
    the head to eval mode and run without gradients.
    """

    def __init__(self, config: HeadConfig, categories: Sequence[str] = ()) -> None:
        super().__init__()
        if categories and len(categories) != config.n_categories:
            raise ValueError(f"categories: expected {config.n_categories} names, got {len(categories)}")
        self.config = config
        self.categories: tuple[str, ...] = tuple(categories)
        self.train_brands: tuple[str, ...] = ()
        self.meta: dict[str, MetaValue] = {}
        self.version = ""
        self.proj = nn.Sequential(
            nn.LayerNorm(config.d_in),
            nn.Linear(config.d_in, config.d_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_hidden, config.d_model),
        )
        # a zero query makes attention pooling start as mean pooling
        self.query = nn.Parameter(torch.zeros(config.d_model)) if config.pooling == "attention" else None
        two = config.towers == "two"
        # the brand tower's residuals start at zero: a new head scores as a shared one
        self.brand_adapter = _adapter(config) if two else None
        self.brand_query = nn.Parameter(torch.zeros(config.d_model)) if two and self.query is not None else None
        self.mix = nn.Parameter(torch.full((2,), config.init_scale))
        self.bias = nn.Parameter(torch.zeros(()))
        self.classifier = nn.Linear(config.d_model, config.n_categories) if config.n_categories else None
        # the partner memory: empty (no term) until set_memory
        self.register_buffer("mem_posts", torch.zeros(0, config.d_model))
        self.register_buffer("mem_post_owner", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mem_partners", torch.zeros(0, config.d_model))
        self.register_buffer("mem_partner_owner", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mem_weight", torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self.mix.device

    @property
    def memory_brands(self) -> int:
        """How many training brands the partner memory holds (0: no memory term)."""
        return int(self.mem_post_owner.max().item()) + 1 if self.mem_post_owner.numel() else 0

    def set_memory(
        self,
        posts: torch.Tensor,
        post_owner: torch.Tensor,
        partners: torch.Tensor,
        partner_owner: torch.Tensor,
        weight: float,
    ) -> None:
        """Set the partner memory: (M, d) brand post projections with their (M,) brand index
        0..K-1, (N, d) partner pooled vectors with theirs, and the term's weight. Every memory
        brand needs a post and a partner; K = 0 (empty tensors) removes the memory."""
        owners = [o.long().flatten() for o in (post_owner, partner_owner)]
        k = int(owners[0].max().item()) + 1 if owners[0].numel() else 0
        for name, o in zip(("post_owner", "partner_owner"), owners, strict=True):
            if o.numel() and not torch.equal(torch.unique(o), torch.arange(k, device=o.device)):
                raise ValueError(f"{name}: expected every memory brand 0..{k - 1}, got {torch.unique(o).tolist()[:8]}")
        dev = self.device
        self.mem_posts = posts.float().reshape(-1, self.config.d_model).to(dev)
        self.mem_post_owner = owners[0].to(dev)
        self.mem_partners = partners.float().reshape(-1, self.config.d_model).to(dev)
        self.mem_partner_owner = owners[1].to(dev)
        self.mem_weight = torch.tensor(float(weight) if k else 0.0, device=dev)

    def memory_score(
        self, brand_post_proj: torch.Tensor, brand_mask: torch.Tensor, infl_pooled: torch.Tensor
    ) -> torch.Tensor:
        """(B, C) partner-memory scores of B brands ((B, Pb, d) + (B, Pb) mask) against
        candidates' pooled vectors, (B, C, d) or (C, d) for one list shared by all brands."""
        k = self.memory_brands
        shared = infl_pooled.ndim == 2
        if k == 0:
            c = infl_pooled.shape[0] if shared else infl_pooled.shape[1]
            return brand_post_proj.new_zeros((brand_post_proj.shape[0], c))
        sims = torch.einsum("bpd,md->bpm", brand_post_proj, self.mem_posts)
        best = _segment_max(sims, self.mem_post_owner, k)  # (B, Pb, K): each post's best match in each brand
        alike = masked_mean(best, brand_mask[..., None].expand_as(best), dim=1)  # (B, K)
        # only the memory_top brands that post most alike count (the softmax leaves the others
        # next to nothing): a query scores its candidates against their partners alone
        top_sim, top = alike.topk(min(self.config.memory_top, k), dim=-1)  # (B, m)
        weights = torch.softmax(top_sim / self.config.memory_temperature, dim=-1)
        chosen = torch.unique(top)  # (U,) the brands some query of the batch uses
        slot = torch.full((k,), -1, dtype=torch.long, device=chosen.device)
        slot[chosen] = torch.arange(chosen.numel(), device=chosen.device)
        rows = torch.nonzero(slot[self.mem_partner_owner] >= 0, as_tuple=True)[0]
        partners, owner = self.mem_partners[rows], slot[self.mem_partner_owner[rows]]
        weights = weights * brand_mask.any(dim=-1, keepdim=True)  # a brand without posts: no memory
        if shared:
            to_partners = _segment_max(infl_pooled @ partners.T, owner, chosen.numel())  # (C, U)
            return torch.einsum("bm,bcm->bc", weights, to_partners.T[slot[top]].permute(0, 2, 1))
        to_partners = _segment_max(torch.einsum("bcd,nd->bcn", infl_pooled, partners), owner, chosen.numel())
        picked = torch.gather(to_partners, 2, slot[top][:, None, :].expand(-1, to_partners.shape[1], -1))
        return torch.einsum("bm,bcm->bc", weights, picked)

    def project(self, features: torch.Tensor, brand: bool | torch.Tensor = False) -> torch.Tensor:
        """(n_posts, d_in) frozen features -> (n_posts, d) L2-normalised projections.

        brand: True (every row), or an (n_posts,) bool mask, of the rows that are brand
        posts (the brand tower); influencer posts go through the trunk alone.
        """
        u = self.proj(features)
        if self.brand_adapter is None or brand is False:
            return F.normalize(u, dim=-1)
        if brand is True:
            return F.normalize(u + self.brand_adapter(u), dim=-1)
        rows = torch.nonzero(brand, as_tuple=True)[0]
        return F.normalize(u.index_add(0, rows, self.brand_adapter(u[rows])), dim=-1)

    def pool_padded(self, x: torch.Tensor, mask: torch.Tensor, brand: bool = False) -> torch.Tensor:
        """(..., P, d) projections + (..., P) mask -> (..., d) L2-normalised pooled vectors
        (with the brand tower's pooling when ``brand``)."""
        query: torch.Tensor | None = self.query
        if brand and self.brand_query is not None and query is not None:
            query = query + self.brand_query
        if query is None:
            pooled = masked_mean(x, mask.unsqueeze(-1).expand_as(x), dim=-2)
        else:
            weights = masked_softmax(x @ query, mask, dim=-1)
            pooled = (weights.unsqueeze(-1) * x).sum(dim=-2)
        return F.normalize(pooled, dim=-1)

    def pool(self, proj: torch.Tensor, offsets: np.ndarray | torch.Tensor, brand: bool = False) -> torch.Tensor:
        """(n_posts, d) projections grouped by ``offsets`` -> (n_accounts, d) pooled, L2-normalised."""
        padded, mask = pad_posts(proj, offsets)
        return self.pool_padded(padded, mask, brand)

    def score(
        self,
        brand_post_proj: torch.Tensor,
        brand_mask: torch.Tensor,
        infl_post_proj: torch.Tensor,
        infl_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Scores (B, C) of B brands against C candidate influencers each.

        brand_post_proj (B, Pb, d) + brand_mask (B, Pb); infl_post_proj (B, C, Pi, d) +
        infl_mask (B, C, Pi), or (C, Pi, d) + (C, Pi) for one candidate list shared by all
        brands. Inputs are per-post projections from ``project`` (the brand's with ``brand``).
        """
        return self.score_sets(
            brand_post_proj,
            brand_mask,
            self.pool_padded(brand_post_proj, brand_mask, brand=True),
            infl_post_proj,
            infl_mask,
            self.pool_padded(infl_post_proj, infl_mask),
        )

    def score_sets(
        self,
        brand_post_proj: torch.Tensor,
        brand_mask: torch.Tensor,
        brand_pooled: torch.Tensor,
        infl_post_proj: torch.Tensor,
        infl_mask: torch.Tensor,
        infl_pooled: torch.Tensor,
    ) -> torch.Tensor:
        """``score`` with the pooled vectors (B, d) and (B, C, d) or (C, d) already computed."""
        shared = infl_post_proj.ndim == 3
        if shared:
            cosine = brand_pooled @ infl_pooled.T
            sims = torch.einsum("bpd,cqd->bcpq", brand_post_proj, infl_post_proj)
            qmask = infl_mask[None, :, None, :]
        else:
            cosine = torch.einsum("bd,bcd->bc", brand_pooled, infl_pooled)
            sims = torch.einsum("bpd,bcqd->bcpq", brand_post_proj, infl_post_proj)
            qmask = infl_mask[:, :, None, :]
        # each brand post looks for its closest influencer posts (a soft max), then the
        # brand's posts vote equally: an influencer covering the brand's themes wins
        weights = masked_softmax(sims / self.config.temperature, qmask.expand_as(sims), dim=-1)
        per_brand_post = (weights * sims).sum(dim=-1)
        pmask = brand_mask[:, None, :].expand_as(per_brand_post)
        set_term = masked_mean(per_brand_post, pmask, dim=-1)
        out = self.mix[0] * cosine + self.mix[1] * set_term + self.bias
        if self.memory_brands:
            out = out + self.mem_weight * self.memory_score(brand_post_proj, brand_mask, infl_pooled)
        return out

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, d) pooled vectors -> (N, n_categories) category logits."""
        if self.classifier is None:
            raise ValueError("classify: this head has no categories (n_categories=0)")
        return self.classifier(pooled)

    @torch.no_grad()
    def project_posts(self, postsets: PostSets, batch_posts: int = 8192) -> np.ndarray:
        """(n_posts, d) float32 L2-normalised projections, rows aligned with ``postsets.features``;
        brands' posts through the brand tower."""
        self._check_dims(postsets)
        self.eval()
        brand_post = np.repeat(brand_accounts(postsets), np.diff(postsets.offsets))
        out = np.zeros((postsets.features.shape[0], self.config.d_model), dtype=np.float32)
        for start in range(0, out.shape[0], batch_posts):
            chunk = torch.from_numpy(np.asarray(postsets.features[start : start + batch_posts], np.float32))
            mask = torch.from_numpy(brand_post[start : start + batch_posts]).to(self.device)
            out[start : start + chunk.shape[0]] = self.project(chunk.to(self.device), mask).cpu().numpy()
        return out

    @torch.no_grad()
    def pool_projected(
        self, post_proj: np.ndarray, offsets: np.ndarray, brand: np.ndarray | None = None, batch_accounts: int = 1024
    ) -> np.ndarray:
        """(n_accounts, d) float32 L2-normalised pooled vectors from ``project_posts`` output.

        brand: (n_accounts,) bool, the accounts pooled by the brand tower (default none).
        """
        self.eval()
        offs = np.asarray(offsets, dtype=np.int64)
        n_acc = offs.size - 1
        is_brand = np.zeros(n_acc, bool) if brand is None else np.asarray(brand, bool)
        out = np.zeros((n_acc, self.config.d_model), dtype=np.float32)
        # runs of accounts of one side, in slices of at most batch_accounts: no gather copy
        cuts = np.flatnonzero(np.diff(is_brand.astype(np.int8))) + 1
        for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [n_acc]]), strict=True):
            for a in range(int(lo), int(hi), batch_accounts):
                b = min(int(hi), a + batch_accounts)
                rows = torch.from_numpy(np.asarray(post_proj[offs[a] : offs[b]], np.float32)).to(self.device)
                out[a:b] = self.pool(rows, offs[a : b + 1] - offs[a], brand=bool(is_brand[a])).cpu().numpy()
        return out

    def encode_accounts(self, postsets: PostSets) -> np.ndarray:
        """(n_accounts, d) float32 L2-normalised pooled embeddings (influencers': what the FAISS
        index holds; brands': their queries)."""
        return self.pool_projected(self.project_posts(postsets), postsets.offsets, brand_accounts(postsets))

    @torch.no_grad()
    def score_candidates(
        self,
        brand_post_proj: np.ndarray | torch.Tensor,
        cand_post_proj: Sequence[np.ndarray | torch.Tensor] | torch.Tensor,
        cand_mask: torch.Tensor | None = None,
        batch_candidates: int = 512,
    ) -> np.ndarray:
        """(C,) float32 scores of one brand against C candidates, from per-post projections.

        brand_post_proj: (Pb, d). cand_post_proj: a list of C (Pi, d) arrays, or a padded
        (C, P, d) tensor with its (C, P) ``cand_mask``.
        """
        self.eval()
        d = self.config.d_model
        brand = as_float_tensor(brand_post_proj)
        if brand.ndim != 2 or brand.shape[1] != d:
            raise ValueError(f"brand_post_proj: expected shape (n, {d}), got {tuple(brand.shape)}")
        if torch.is_tensor(cand_post_proj):
            if cand_mask is None:
                raise ValueError("cand_mask: required with a padded cand_post_proj tensor")
            cands, mask = cand_post_proj, cand_mask
        else:
            cands, mask = pad_sets(list(cand_post_proj), d)
        brand = brand[None].to(self.device)
        bmask = torch.ones(brand.shape[:2], dtype=torch.bool, device=self.device)
        scores = [
            self.score(
                brand,
                bmask,
                cands[s : s + batch_candidates].to(self.device),
                mask[s : s + batch_candidates].to(self.device),
            )[0]
            for s in range(0, cands.shape[0], batch_candidates)
        ]
        return torch.cat(scores).cpu().numpy() if scores else np.zeros(0, np.float32)

    def _check_dims(self, postsets: PostSets) -> None:
        if (postsets.d_image, postsets.d_text) != (self.config.d_image, self.config.d_text):
            raise ValueError(
                f"postsets: expected d_image={self.config.d_image}, d_text={self.config.d_text}, "
                f"got {postsets.d_image}, {postsets.d_text}"
            )


def brand_accounts(postsets: PostSets) -> np.ndarray:
    """(n_accounts,) bool: which accounts of ``postsets`` are brands (the brand tower's)."""
    return np.fromiter((k == "brand" for k in postsets.kinds), bool, count=len(postsets.kinds))


def _segment_max(x: torch.Tensor, owner: torch.Tensor, k: int) -> torch.Tensor:
    """(..., M) -> (..., k): the max of x over the columns of each owner 0..k-1."""
    out = x.new_full((*x.shape[:-1], k), float("-inf"))
    return out.scatter_reduce(-1, owner.expand(*x.shape[:-1], -1), x, reduce="amax", include_self=True)


def _adapter(config: HeadConfig) -> nn.Module:
    """The brand tower's residual over the shared projection; its last layer starts at zero."""
    adapter = nn.Sequential(
        nn.LayerNorm(config.d_model),
        nn.Linear(config.d_model, config.d_hidden),
        nn.GELU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.d_hidden, config.d_model),
    )
    last = adapter[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return adapter
