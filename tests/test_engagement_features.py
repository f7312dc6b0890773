"""Hand-made engagement features on hand-computed values (pure functions, no store)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from congruence.engagement.features import (
    ALT_CONCEPTS,
    FEATURES,
    N_ALT,
    N_CAPTION,
    N_FEATURES,
    N_POST,
    alt_concepts,
    alt_features,
    caption_features,
    hand_features,
)

CAPTION = "Sunny day! #beach #sun @anna 😀😀\nSee you?"


def test_feature_layout() -> None:
    assert N_FEATURES == len(FEATURES) == N_CAPTION + N_POST + N_ALT == 11 + 2 + 6 + len(ALT_CONCEPTS)
    assert len(set(FEATURES)) == N_FEATURES
    assert FEATURES[N_CAPTION : N_CAPTION + N_POST] == ("log_tagged", "sponsored")


def test_caption_features_hand_computed() -> None:
    # 40 characters ("Sunny day! " 11, "#beach " 7, "#sun " 5, "@anna " 6, two emoji 2, newline 1,
    # "See you?" 8), 8 words, 2 hashtags, 1 mention, 2 emoji, 1 line break, "?" and "!", no URL,
    # 2 capitals (S, S) and 2 non-ASCII characters (the emoji) out of 40
    expected = [
        math.log(41),
        math.log(9),
        math.log(3),
        math.log(2),
        math.log(3),
        math.log(2),
        1.0,
        1.0,
        0.0,
        2 / 40,
        2 / 40,
    ]
    assert caption_features(CAPTION) == pytest.approx(expected)
    assert caption_features("see www.shop.com")[8] == 1.0 and caption_features("http://x.y")[8] == 1.0
    assert caption_features("e-mail me")[3] == 0.0  # no @: no mention


def test_alt_concepts_parse_instagram_descriptions() -> None:
    assert alt_concepts("Image may contain: 2 people, people smiling, outdoor and water.") == [
        "2 people",
        "people smiling",
        "outdoor",
        "water",
        "smiling",
    ]
    assert alt_concepts("Image may contain: 1 person, standing, shoes and outdoor") == [
        "1 person",
        "standing",
        "shoes",
        "outdoor",
    ]
    assert alt_concepts("Image may contain: one or more people") == ["one or more people"]
    # the placeholder and alt text a person wrote are no list of detected concepts
    assert alt_concepts("No photo description available.") == alt_concepts("Woman standing outside") == []
    assert alt_concepts(None) == alt_concepts("") == []


def test_alt_features_people_and_concepts() -> None:
    f = alt_features(["2 people", "people smiling", "outdoor", "water", "smiling"])
    # people 1 / 2 / 3+, log(1 + people), some people, log(1 + 5 concepts), then the bag
    assert f[:6] == pytest.approx([0.0, 1.0, 0.0, math.log(3), 1.0, math.log(6)])
    bag = dict(zip(ALT_CONCEPTS, f[6:], strict=True))
    assert {c for c, v in bag.items() if v} == {"outdoor", "water", "smiling"}
    assert alt_features(["1 person"])[:6] == pytest.approx([1.0, 0.0, 0.0, math.log(2), 1.0, math.log(2)])
    assert alt_features(["7 people", "crowd"])[:5] == pytest.approx([0.0, 0.0, 1.0, math.log(8), 1.0])
    # "one or more people": people, but no count
    assert alt_features(["one or more people"])[:5] == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.0])


def test_hand_features_masks_what_is_unknown() -> None:
    x, mask = hand_features(
        [CAPTION, None, "  "],
        ["Image may contain: 1 person", "", "No photo description available"],
        [3, None, 0],
        [True, None, False],
    )
    assert x.shape == mask.shape == (3, N_FEATURES) and x.dtype == np.float32 and mask.dtype == bool
    a, b = N_CAPTION, N_CAPTION + N_POST
    np.testing.assert_allclose(x[0, :a], caption_features(CAPTION), rtol=1e-6)
    np.testing.assert_allclose(x[0, a:b], [math.log(4), 1.0], rtol=1e-6)
    np.testing.assert_allclose(x[0, b:], alt_features(["1 person"]), rtol=1e-6)
    assert mask[0].all()
    # no caption, no alt, tags and paid flag unknown: everything masked and zero
    assert not mask[1].any() and not x[1].any()
    # a blank caption and the placeholder are unknown; zero tags and "not paid" are known
    assert mask[2].tolist() == [False] * a + [True, True] + [False] * N_ALT
    assert not x[2].any()
