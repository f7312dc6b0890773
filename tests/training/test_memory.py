"""The head's partner memory (issue 36): its score against brute force, its checkpoint, how its
weight is learned, and that every head score carries it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.store.postsets import PostSets
from congruence.training.checkpoint import load_head, save_head
from congruence.training.loop import TrainConfig, train
from congruence.training.memory import WEIGHTS, fit_weight
from congruence.training.model import CongruenceHead, HeadConfig

from .training_synthetic import TEST_BRANDS, TRAIN_BRANDS

D = 6
CONFIG = HeadConfig(d_image=4, d_text=2, d_model=D, d_hidden=8, dropout=0.0, memory_temperature=0.1)


def unit(*shape: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def with_memory(weight: float = 2.0, top: int = 8) -> CongruenceHead:
    head = CongruenceHead(replace(CONFIG, memory_top=top))
    posts, partners = unit(7, D, seed=1), unit(5, D, seed=2)
    head.set_memory(posts, torch.tensor([0, 0, 1, 1, 1, 2, 2]), partners, torch.tensor([0, 1, 1, 2, 2]), weight)
    return head.eval()


def brute(head: CongruenceHead, brand: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """The memory score of one brand's posts (P, d) against pooled candidates (C, d), by loops."""
    posts, owner = head.mem_posts.numpy(), head.mem_post_owner.numpy()
    partners, powner = head.mem_partners.numpy(), head.mem_partner_owner.numpy()
    k = owner.max() + 1
    sim = np.array([np.mean([max(p @ q for q in posts[owner == j]) for p in brand]) for j in range(k)])
    top = np.argsort(-sim)[: head.config.memory_top]  # only the brands that post most alike
    w = np.exp(sim[top] / CONFIG.memory_temperature)
    w /= w.sum()
    return np.array(
        [sum(wj * max(c @ q for q in partners[powner == j]) for wj, j in zip(w, top, strict=True)) for c in cands]
    )


@pytest.mark.parametrize("top", [8, 2, 1])
def test_the_memory_score_is_the_brute_force_one_for_shared_and_per_brand_lists(top: int) -> None:
    """Every memory brand (top 8 of 3) or only the one or two that post most alike."""
    head = with_memory(top=top)
    brands, mask = unit(2, 3, D, seed=3), torch.tensor([[True, True, False], [True, True, True]])
    cands = unit(4, D, seed=4)
    want = np.stack([brute(head, brands[i][mask[i]].numpy(), cands.numpy()) for i in range(2)])
    got = head.memory_score(brands, mask, cands).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    per_brand = head.memory_score(brands, mask, cands[None].expand(2, -1, -1)).numpy()
    np.testing.assert_allclose(per_brand, want, atol=1e-5)


def test_every_head_score_carries_the_weighted_memory_term() -> None:
    """score = the score without memory + mem_weight x memory_score, shared and per-list."""
    head = with_memory(weight=3.0)
    brands, bmask = unit(2, 3, D, seed=5), torch.ones(2, 3, dtype=torch.bool)
    cands, cmask = unit(4, 2, D, seed=6), torch.ones(4, 2, dtype=torch.bool)
    with torch.no_grad():
        full = head.score(brands, bmask, cands, cmask)
        pooled = head.pool_padded(cands, cmask)
        term = head.memory_score(brands, bmask, pooled)
        head.mem_weight.zero_()
        plain = head.score(brands, bmask, cands, cmask)
        per_list = head.score(brands, bmask, cands[None].expand(2, -1, -1, -1), cmask[None].expand(2, -1, -1))
    assert float(term.abs().sum()) > 0
    torch.testing.assert_close(full, plain + 3.0 * term)
    torch.testing.assert_close(per_list, plain)


def test_a_memory_needs_every_brand_to_have_posts_and_partners() -> None:
    head = CongruenceHead(CONFIG)
    with pytest.raises(ValueError, match="partner_owner: expected every memory brand 0..1"):
        head.set_memory(unit(2, D, seed=1), torch.tensor([0, 1]), unit(2, D, seed=2), torch.tensor([0, 0]), 1.0)
    assert head.memory_brands == 0
    empty = head.memory_score(unit(1, 2, D, seed=3), torch.ones(1, 2, dtype=torch.bool), unit(3, D, seed=4))
    assert torch.equal(empty, torch.zeros(1, 3))


def test_the_memory_survives_a_checkpoint_and_old_checkpoints_load_without_one(tmp_path: Path) -> None:
    head = with_memory(weight=2.5)
    path = tmp_path / "head.pt"
    save_head(head, path)
    again = load_head(path)
    assert again.memory_brands == 3 and float(again.mem_weight) == 2.5
    brands, bmask = unit(1, 2, D, seed=7), torch.ones(1, 2, dtype=torch.bool)
    cands, cmask = unit(3, 2, D, seed=8), torch.ones(3, 2, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(again.score(brands, bmask, cands, cmask), head.score(brands, bmask, cands, cmask))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("mem_")}
    torch.save(payload, path)
    old = load_head(path)
    assert old.memory_brands == 0 and float(old.mem_weight) == 0.0


def test_the_weight_is_zero_for_a_misleading_memory_and_large_for_a_telling_one() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((6, 40))
    labels[:, :4] = 1
    base = rng.standard_normal((6, 40)) + 0.5 * labels  # the head alone ranks partners a little up
    assert fit_weight(base, -labels + 0.1 * rng.standard_normal((6, 40)), labels) == 0.0
    telling = labels + 0.01 * rng.standard_normal((6, 40))
    assert fit_weight(base, telling, labels) >= 8.0
    assert fit_weight(base, telling, labels) in WEIGHTS


def test_train_learns_the_weight_on_held_back_brands_and_remembers_every_training_brand(
    synthetic: tuple[PostSets, list],
) -> None:
    postsets, pairs = synthetic
    head_config = HeadConfig(d_image=8, d_text=4, d_model=16, d_hidden=32, dropout=0.0)
    config = TrainConfig(epochs=8, lr=5e-3, batch_brands=4, list_size=8, seed=0, device="cpu", partner_memory=True)
    model = train(postsets, pairs, config, head_config, train_brands=TRAIN_BRANDS).model
    assert model.memory_brands == len(TRAIN_BRANDS)
    partners = sum(1 for b, _ in pairs if b in TRAIN_BRANDS)
    assert model.mem_partners.shape == (partners, 16) and float(model.mem_weight) in WEIGHTS
    # a creator that a held-out brand partners with too is never in the memory: an evaluation
    # would score that held-out partner by its cosine to itself
    shared = next(i for b, i in pairs if b == TRAIN_BRANDS[0])
    leaky = train(postsets, [*pairs, (TEST_BRANDS[0], shared)], config, head_config, train_brands=TRAIN_BRANDS)
    assert leaky.model.mem_partners.shape[0] == partners - sum(1 for b, i in pairs if i == shared)
    plain = train(postsets, pairs, replace(config, partner_memory=False), head_config, train_brands=TRAIN_BRANDS)
    assert plain.model.memory_brands == 0
    # the memory's helper head trains apart: the head in service is the one trained without it
    for a, b in zip(plain.model.state_dict().items(), model.state_dict().items(), strict=False):
        if not a[0].startswith("mem_"):
            assert torch.equal(a[1], b[1]), a[0]
