from __future__ import annotations

import math

import pytest
import torch

from congruence.training.losses import category_loss, geometry_loss, listmle_loss, listnet_loss

# scores (1, 2, 3): logsumexp(1, 2, 3) = ln(e + e^2 + e^3) = ln(30.19287485) = 3.40760596
LSE_123 = 3.40760596
# logsumexp(2, 3) = logsumexp(3, 2) = 3 + ln(1 + e^-1) = 3.31326169
LSE_23 = 3.31326169


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_listnet_one_positive() -> None:
    # target (1, 0, 0): loss = -log softmax(s)[0] = LSE_123 - 1 = 2.40760596
    loss = listnet_loss(t([1, 2, 3]), t([1, 0, 0]), torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(2.40760596, abs=1e-7)


def test_listnet_labels_are_normalised() -> None:
    # labels (2, 2, 0) -> target (0.5, 0.5, 0): loss = LSE_123 - 0.5 * (1 + 2) = 1.90760596
    loss = listnet_loss(t([1, 2, 3]), t([2, 2, 0]), torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(1.90760596, abs=1e-7)


def test_listnet_mask_excludes_items() -> None:
    # the 4th item (score 100, label 1) is padding: same value as the 1x3 case
    mask = torch.tensor([[True, True, True, False]])
    loss = listnet_loss(t([1, 2, 3, 100]), t([1, 0, 0, 1]), mask)
    assert loss.item() == pytest.approx(2.40760596, abs=1e-7)


def test_listmle_sorted_by_labels() -> None:
    # labels (2, 0, 1) -> order (item0, item2, item1), scores in that order (1, 3, 2):
    # (LSE(1,3,2) - 1) + (LSE(3,2) - 3) + (2 - 2) = 2.40760596 + 0.31326169 = 2.72086765
    loss = listmle_loss(t([1, 2, 3]), t([2, 0, 1]), torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(2.72086765, abs=1e-7)
    assert pytest.approx(2.72086765, abs=1e-7) == LSE_123 - 1 + LSE_23 - 3


def test_listmle_ties_keep_list_order() -> None:
    # labels (1, 0, 0): the tied negatives keep their order -> (item0, item1, item2):
    # (LSE(1,2,3) - 1) + (LSE(2,3) - 2) + 0 = 2.40760596 + 1.31326169 = 3.72086765
    loss = listmle_loss(t([1, 2, 3]), t([1, 0, 0]), torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(3.72086765, abs=1e-7)


def test_listmle_mask_excludes_items_and_batch_mean() -> None:
    scores = t([1, 2, 3, 50], [1, 2, 3, 0])
    labels = t([2, 0, 1, 9], [2, 0, 1, 0])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    assert listmle_loss(scores, labels, mask).item() == pytest.approx(2.72086765, abs=1e-7)


@pytest.mark.parametrize("loss_fn", [listnet_loss, listmle_loss])
def test_gradients_are_finite_with_padding(loss_fn) -> None:  # type: ignore[no-untyped-def]
    scores = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    loss_fn(scores, labels, mask).backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert scores.grad[0, 3] == 0 and scores.grad[1, 2:].abs().sum() == 0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one shape"):
        listnet_loss(t([1, 2, 3]), t([1, 0]), torch.ones(1, 3, dtype=torch.bool))


def test_category_loss_ignores_unknown() -> None:
    logits = torch.tensor([[0.0, 0.0], [5.0, -5.0], [1.0, 2.0]])
    loss = category_loss(logits, torch.tensor([0, -1, -1]))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert category_loss(logits, torch.tensor([-1, -1, -1])).item() == 0.0


def test_geometry_loss_is_zero_when_the_projection_keeps_the_neighbours() -> None:
    """Zero for the normalised features themselves (or any rotation of them), positive when the
    projection swaps which posts are neighbours, and it trains the projection towards them."""
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(12, 6, generator=gen)
    kept = torch.nn.functional.normalize(raw, dim=-1)
    rotation = torch.linalg.qr(torch.randn(6, 6, generator=gen))[0]
    assert geometry_loss(raw, kept).item() == pytest.approx(0.0, abs=1e-5)
    assert geometry_loss(raw, kept @ rotation).item() == pytest.approx(0.0, abs=1e-4)
    shuffled = kept[torch.randperm(12, generator=gen)]
    assert geometry_loss(raw, shuffled).item() > 0.5
    proj = torch.nn.Linear(6, 6)
    opt = torch.optim.Adam(proj.parameters(), lr=0.05)
    first = geometry_loss(raw, torch.nn.functional.normalize(proj(raw), dim=-1)).item()
    for _ in range(200):
        loss = geometry_loss(raw, torch.nn.functional.normalize(proj(raw), dim=-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 4


def test_geometry_loss_refuses_rows_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="one row count"):
        geometry_loss(torch.zeros(3, 4), torch.zeros(2, 4))
    assert geometry_loss(torch.zeros(1, 4), torch.zeros(1, 2, requires_grad=True)).item() == 0.0
