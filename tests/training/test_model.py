from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from congruence.store.postsets import PostSets
from congruence.training.checkpoint import load_head, save_head
from congruence.training.model import CongruenceHead, HeadConfig
from congruence.training.sets import pad_posts


def head(pooling: str = "attention", n_categories: int = 0) -> CongruenceHead:
    torch.manual_seed(0)
    model = CongruenceHead(
        HeadConfig(
            d_image=8, d_text=4, d_model=16, d_hidden=32, pooling=pooling, n_categories=n_categories, dropout=0.0
        )
    )
    if model.query is not None:
        # a non-zero query, so attention is not a plain mean
        torch.nn.init.normal_(model.query, std=3.0)
    return model.eval()


def test_attention_pooling_one_post_and_many_posts() -> None:
    model = head()
    proj = F.normalize(torch.randn(1 + 9, 16), dim=-1)
    with torch.no_grad():
        pooled = model.pool(proj, np.array([0, 1, 10, 10]))  # 1 post, 9 posts, no post
        alone = model.pool(proj[1:], np.array([0, 9]))
    assert torch.allclose(pooled[0], proj[0], atol=1e-6)
    assert torch.allclose(pooled[1], alone[0], atol=1e-6)  # padding changes nothing
    assert torch.allclose(pooled[1].norm(), torch.tensor(1.0), atol=1e-6)
    assert torch.equal(pooled[2], torch.zeros(16))
    assert model.query is not None
    weights = torch.softmax(proj[1:] @ model.query.detach(), dim=0)
    assert torch.allclose(pooled[1], F.normalize(weights @ proj[1:], dim=-1), atol=1e-6)


def test_mean_pooling_is_normalised_mean() -> None:
    model = head("mean")
    proj = F.normalize(torch.randn(7, 16), dim=-1)
    with torch.no_grad():
        pooled = model.pool(proj, np.array([0, 3, 7]))
    assert torch.allclose(pooled[0], F.normalize(proj[:3].mean(0), dim=-1), atol=1e-6)
    assert torch.allclose(pooled[1], F.normalize(proj[3:].mean(0), dim=-1), atol=1e-6)


def test_score_batched_shared_and_per_list_agree() -> None:
    model = head()
    brands, bmask = pad_posts(F.normalize(torch.randn(5, 16), dim=-1), np.array([0, 2, 5]))
    cands, cmask = pad_posts(F.normalize(torch.randn(9, 16), dim=-1), np.array([0, 1, 4, 9]))
    with torch.no_grad():
        shared = model.score(brands, bmask, cands, cmask)
        per_list = model.score(brands, bmask, cands.expand(2, -1, -1, -1), cmask.expand(2, -1, -1))
        one = model.score_candidates(brands[1, :3].numpy(), [cands[i][cmask[i]].numpy() for i in range(3)])
    assert shared.shape == (2, 3)
    assert torch.allclose(shared, per_list, atol=1e-6)
    assert np.allclose(one, shared[1].numpy(), atol=1e-5)


def test_encode_accounts_and_project_posts(synthetic: tuple[PostSets, list]) -> None:
    postsets, _ = synthetic
    model = head()
    proj = model.project_posts(postsets, batch_posts=7)
    pooled = model.encode_accounts(postsets)
    assert proj.shape == (postsets.features.shape[0], 16) and pooled.shape == (len(postsets), 16)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = model.pool(model.project(torch.from_numpy(postsets.features)), postsets.offsets)
    assert np.allclose(pooled, expected.numpy(), atol=1e-5)


def test_classify_needs_categories() -> None:
    assert head(n_categories=3).classify(torch.zeros(2, 16)).shape == (2, 3)
    with pytest.raises(ValueError, match="no categories"):
        head().classify(torch.zeros(2, 16))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="pooling must be attention or mean, got 'max'"):
        HeadConfig(d_image=8, d_text=4, pooling="max")


def test_save_load_round_trip(tmp_path: Path, synthetic: tuple[PostSets, list]) -> None:
    postsets, _ = synthetic
    model = CongruenceHead(
        HeadConfig(d_image=8, d_text=4, d_model=16, d_hidden=32, n_categories=2), categories=["food", "sport"]
    )
    model.train_brands = ("b1", "b2")
    path = tmp_path / "models" / "head.pt"
    version = save_head(model, path, {"image_encoder": "efficientnet-lite0", "text_encoder": "minilm-l6"})
    loaded = load_head(path)
    assert loaded.version == version == model.version and len(version.split("-")[1]) == 12
    assert loaded.meta == {"image_encoder": "efficientnet-lite0", "text_encoder": "minilm-l6"}
    assert loaded.categories == ("food", "sport") and loaded.train_brands == ("b1", "b2")
    assert loaded.config == model.config and not loaded.training
    proj = model.project_posts(postsets)
    assert np.array_equal(loaded.project_posts(postsets), proj)
    cands = [proj[postsets.offsets[i] : postsets.offsets[i + 1]] for i in range(1, 6)]
    assert np.array_equal(
        loaded.score_candidates(proj[: postsets.offsets[1]], cands),
        model.score_candidates(proj[: postsets.offsets[1]], cands),
    )


def test_load_refuses_other_files(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a congruence head checkpoint"):
        load_head(tmp_path / "other.pt")
