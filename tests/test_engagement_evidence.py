"""The evidence test behind suggestions, on seeded synthetic posts (no store, no encoders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.engagement.concepts import ConceptBank
from congruence.engagement.evidence import Candidates, Effect, Evidence, measure, screen
from congruence.engagement.labels import engagement_z
from congruence.engagement.suggest import NOTHING_QUALIFIES, SuggestionBank

NAMES = [f"c{j}" for j in range(40)]


def _world(seed: int, effect: float = 0.5, n_accounts: int = 200, per: int = 6) -> tuple[np.ndarray, ...]:
    """(x, likes, groups, test): 40 concepts at base rates 10-50 %; log-likes grow by ``effect`` on posts
    showing c0 (other concepts: no effect); a fifth of the accounts held out."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_accounts), per)
    x = rng.random((len(groups), len(NAMES))) < rng.uniform(0.1, 0.5, len(NAMES))
    logl = rng.normal(5, 1, n_accounts)[groups] + effect * x[:, 0] + rng.normal(0, 1, len(groups))
    test = np.isin(groups, rng.permutation(n_accounts)[: n_accounts // 5])
    return x, np.round(np.exp(logl)), groups, test


def _measure(
    x: np.ndarray,
    likes: np.ndarray,
    groups: np.ndarray,
    test: np.ndarray,
    seed: int = 0,
    controls: np.ndarray | None = None,
) -> Evidence:
    c = Candidates("alt", NAMES[: x.shape[1]], x, np.ones(len(groups), bool), controls)
    return measure([c], engagement_z(likes, groups), groups, ~test, test, n_boot=500, seed=seed)


def test_a_planted_concept_qualifies_with_an_interval_excluding_zero() -> None:
    x, likes, groups, test = _world(0)
    ev = _measure(x, likes, groups, test)
    assert [e.name for e in ev.qualified] == ["c0"]
    c0 = ev.qualified[0]
    assert c0.low > 0 and c0.low < c0.lift < c0.high
    # the effect is on log-likes; the label divides by the account's spread (about 1.1 here)
    assert 0.2 < c0.lift < 1.0
    # support: held-out posts showing c0 in held-out accounts that also have posts without it
    held = groups[test]
    shown = np.bincount(held, weights=x[test, 0], minlength=groups.max() + 1)
    total = np.bincount(held, minlength=groups.max() + 1)
    both = (shown > 0) & (shown < total)
    assert (c0.posts, c0.accounts) == (int(shown[both].sum()), int(both.sum()))
    assert c0.train_accounts > c0.accounts and ev.screened == len(NAMES)
    assert ev.level == pytest.approx(0.05 / len(ev.effects))


def test_shuffled_labels_are_never_suggested() -> None:
    worlds_with_any = 0
    for seed in range(30):
        x, likes, groups, test = _world(seed)
        rng = np.random.default_rng(seed + 100)
        for a in np.unique(groups):  # shuffle likes within each account: no concept has an effect
            rows = np.flatnonzero(groups == a)
            likes[rows] = likes[rng.permutation(rows)]
        ev = _measure(x, likes, groups, test, seed)
        assert "c0" not in [e.name for e in ev.qualified]
        worlds_with_any += bool(ev.qualified)
    # Bonferroni over the concepts tested on held-out accounts: any false one in <= 5 % of worlds
    assert worlds_with_any <= 1


def test_a_concept_that_only_rides_brightness_is_not_an_effect_once_brightness_is_held_fixed() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(300), 6)
    bright = rng.random(len(groups))
    rides = (bright + 0.3 * rng.random(len(groups))) > 0.8  # shown mostly by bright pictures
    likes = np.round(np.exp(rng.normal(5, 1, 300)[groups] + 2.0 * bright + rng.normal(0, 0.5, len(groups))))
    test = groups >= 240
    x = rides[:, None]
    assert [e.name for e in _measure(x, likes, groups, test).qualified] == ["c0"]
    assert _measure(x, likes, groups, test, controls=bright[:, None]).qualified == []


def test_screen_needs_accounts_with_and_without_the_concept() -> None:
    groups = np.repeat(np.arange(4), 3)
    x = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0], bool)[:, None]  # accounts 0 and 1 never vary
    z = np.where(x[:, 0], 1.0, -1.0)
    slope, _, posts, accounts = screen(Candidates("alt", ["c0"], x, np.ones(12, bool)), z, groups)
    assert slope[0] == pytest.approx(2.0) and (posts[0], accounts[0]) == (3, 2)
    never = screen(Candidates("alt", ["c0"], np.zeros((12, 1), bool), np.ones(12, bool)), z, groups)
    assert np.isnan(never[0][0]) and never[3][0] == 0


def _effect(name: str, kind: str, low: float = 0.2) -> Effect:
    return Effect(name, kind, 0.5, low, 0.8, 40, 12, 0.6, 160, 48)


def _bank() -> ConceptBank:
    """Twelve concepts along the axes of a 12-d image space: an image shows its 5 largest coordinates."""
    names = ["seashore", "sandbar", "castle", "palace"] + [f"other{k}" for k in range(8)]
    return ConceptBank(names, np.eye(12, dtype=np.float32))


def _image(*shown: str) -> np.ndarray:
    """An embedding showing ``shown`` (strongest first), then filler concepts up to five."""
    names = _bank().names
    fill = [n for n in names if n.startswith("other") and n not in shown][: 5 - len(shown)]
    v = np.zeros(12, np.float32)
    for k, name in enumerate([*shown, *fill]):
        v[names.index(name)] = 10 - k
    return v


def test_nothing_qualifies_says_so_in_a_sentence() -> None:
    bank = SuggestionBank(Evidence([_effect("brightness", "property", low=-0.1)], 40, 0.05, 500), None, {}, 0.5)
    [(found, why)] = bank.for_images(_image("castle")[None], np.array([0.1]))
    assert found == [] and why == NOTHING_QUALIFIES
    assert why == (
        "No suggestion: no concept's effect on engagement held up on the accounts held out from "
        "training (an interval excluding zero), so nothing is suggested."
    )


def test_suggestions_are_what_an_image_lacks_and_could_show() -> None:
    effects = [_effect("seashore", "image"), _effect("brightness", "property"), _effect("people", "alt")]
    bank = SuggestionBank(Evidence(effects, 1000, 0.05 / 3, 500), _bank(), {"seashore": [(1, 0.4)]}, 0.55)
    # image 0 shows a sandbar (anchor of seashore) and is dark; image 1 shows the seashore and is bright;
    # image 2 shows a castle: seashore is never seen with it
    emb = np.stack([_image("sandbar"), _image("seashore", "sandbar"), _image("castle", "palace")])
    out = bank.for_images(emb, np.array([0.3, 0.8, 0.9]))
    assert [[s.effect.name for s in found] for found, _ in out] == [["seashore", "brightness"], [], []]
    sea, light = out[0][0]
    assert sea.reason == "the corpus shows it in 40% of posts showing sandbar, as this image does"
    assert sea.text() == (
        "posts showing seashore score +0.50 (+0.20 to +0.80) on the account's scale; 40 posts, "
        "12 accounts held out from training (the corpus shows it in 40% of posts showing sandbar, "
        "as this image does)"
    )
    assert light.text().startswith("brighter pictures score +0.50 (+0.20 to +0.80)")
    assert light.reason == "this image 30% brightness, the corpus median 55%"
    assert sea.to_dict()["ci95"] == [0.2, 0.8] and sea.to_dict()["posts"] == 40
    assert out[1][1] == (
        "No suggestion for this image: of the concepts with a measured effect (seashore, brightness, "
        "people), none fits it: it already shows seashore; it is already at least as bright as the "
        "corpus median (80.0% vs 55.0%); people was measured on Instagram's alt text, which an "
        "uploaded image does not have."
    )
    assert "seashore is not seen in the corpus with what this image shows (castle, palace, other0)" in out[2][1]


def test_the_suggestion_bank_survives_a_weights_only_checkpoint(tmp_path: Path) -> None:
    effects = [
        _effect("seashore", "image"),
        Effect("people", "alt", float("nan"), float("nan"), float("nan"), 0, 2, 0.3, 50, 9),
    ]
    bank = SuggestionBank(Evidence(effects, 1070, 0.025, 500), _bank(), {"seashore": [(1, 0.4)]}, 0.55)
    torch.save(bank.to_payload(), tmp_path / "s.pt")
    again = SuggestionBank.from_payload(torch.load(tmp_path / "s.pt", weights_only=True))
    assert again.evidence.effects[0] == effects[0] and again.anchors == bank.anchors
    assert again.bright_threshold == 0.55 and again.bank is not None and again.bank.names == _bank().names
    assert np.isnan(again.evidence.effects[1].lift) and again.evidence.effects[1].to_dict()["ci"] == [None, None]
    assert again.evidence.to_dict()["qualified"] == 1 and again.evidence.screened == 1070
