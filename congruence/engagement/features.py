"""Hand-made post features for the engagement model: what a person would count on a post.

Sentence embeddings carry a caption's topic well but its form badly (how long, how many
hashtags, emoji or tagged accounts), and Instagram's automatic alt text ("Image may contain:
2 people, smiling, outdoor") is a list of detected concepts better read as a bag of tags
than as a sentence. On the real Instagram posts these counts and tags rank a user's posts
by likes about as well as the embeddings do, and the two add up.

Every feature is known before posting and can differ between a user's candidate posts:
nothing here reads likes, comments, the timestamp or the account's other posts. Groups:

- caption (masked when there is no caption): FEATURES[:N_CAPTION];
- tagged accounts and the paid-partnership flag (masked when unknown, e.g. when scoring);
- alt-text concepts (masked when there is no "Image may contain: ..." description).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

CAPTION_FEATURES = (
    "log_chars",
    "log_words",
    "log_hashtags",
    "log_mentions",
    "log_emoji",
    "log_lines",
    "has_question",
    "has_exclamation",
    "has_url",
    "upper_share",
    "non_ascii_share",
)
POST_FEATURES = ("log_tagged", "sponsored")
# Instagram's alt-text concepts seen on at least 30 of the 39,907 real posts (people counts
# are their own features below); a fixed list so a checkpoint's inputs never depend on data
ALT_CONCEPTS = (
    "outdoor",
    "standing",
    "indoor",
    "sky",
    "nature",
    "closeup",
    "shoes",
    "food",
    "people standing",
    "tree",
    "water",
    "text",
    "plant",
    "sitting",
    "people sitting",
    "ocean",
    "cloud",
    "table",
    "child",
    "drink",
    "dog",
    "flower",
    "mountain",
    "sunglasses",
    "hat",
    "stripes",
    "phone",
    "beard",
    "selfie",
    "car",
    "night",
    "living room",
    "baby",
    "dessert",
    "shorts",
    "grass",
    "beach",
    "eyeglasses",
    "bedroom",
    "coffee cup",
    "snow",
    "wedding",
    "bridge",
    "skyscraper",
    "house",
    "twilight",
    "pool",
    "smiling",
    "fruit",
    "cat",
    "makeup",
    "christmas tree",
    "bicycle",
    "suit",
    "people sleeping",
    "people eating",
    "people playing sports",
    "swimming",
    "coffee",
    "crowd",
    "screen",
    "kitchen",
    "eating",
    "motorcycle",
)
ALT_FEATURES = (
    "alt_people_1",
    "alt_people_2",
    "alt_people_3plus",
    "alt_log_people",
    "alt_some_people",
    "alt_log_concepts",
) + tuple(f"alt_{c.replace(' ', '_')}" for c in ALT_CONCEPTS)
FEATURES = CAPTION_FEATURES + POST_FEATURES + ALT_FEATURES
N_CAPTION, N_POST, N_ALT = len(CAPTION_FEATURES), len(POST_FEATURES), len(ALT_FEATURES)
N_FEATURES = len(FEATURES)

ALT_PREFIX = "image may contain:"
_HASHTAG = re.compile(r"#\w+")
_MENTION = re.compile(r"@[\w.]+")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
# pictographs, dingbats and misc symbols: what people mean by emoji (skin tones and joiners
# are not counted, so a family emoji is one or a few, never a dozen)
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_PEOPLE = re.compile(r"^(\d+) people$")
_CONCEPT_INDEX = {c: k for k, c in enumerate(ALT_CONCEPTS)}


def alt_concepts(alt: str | None) -> list[str]:
    """The concepts of an "Image may contain: a, b and c" alt text, in order; [] for any other text.

    "people smiling" counts as "smiling" too: the same detector, said of a group.
    """
    text = (alt or "").strip().rstrip(".")
    if not text.lower().startswith(ALT_PREFIX):
        return []
    out: list[str] = []
    for part in text[len(ALT_PREFIX) :].split(","):
        for item in part.split(" and "):
            c = item.strip().lower()
            if c and c not in out:
                out.append(c)
    if "people smiling" in out and "smiling" not in out:
        out.append("smiling")
    return out


def caption_features(caption: str) -> list[float]:
    """CAPTION_FEATURES of one non-empty caption."""
    n = max(len(caption), 1)
    return [
        math.log1p(len(caption)),
        math.log1p(len(caption.split())),
        math.log1p(len(_HASHTAG.findall(caption))),
        math.log1p(len(_MENTION.findall(caption))),
        math.log1p(len(_EMOJI.findall(caption))),
        math.log1p(caption.count("\n")),
        float("?" in caption),
        float("!" in caption),
        float(bool(_URL.search(caption))),
        sum(ch.isupper() for ch in caption) / n,
        sum(ord(ch) > 127 for ch in caption) / n,
    ]


def alt_features(concepts: Sequence[str]) -> list[float]:
    """ALT_FEATURES of a described image (``concepts`` from ``alt_concepts``, non-empty)."""
    people = 1 if "1 person" in concepts else next((int(m.group(1)) for c in concepts if (m := _PEOPLE.match(c))), 0)
    bag = [0.0] * len(ALT_CONCEPTS)
    for c in concepts:
        if c in _CONCEPT_INDEX:
            bag[_CONCEPT_INDEX[c]] = 1.0
    return [
        float(people == 1),
        float(people == 2),
        float(people >= 3),
        math.log1p(people),
        float(people > 0 or "one or more people" in concepts),
        math.log1p(len(concepts)),
    ] + bag


def hand_features(
    captions: Sequence[str | None],
    alts: Sequence[str | None],
    n_tagged: Sequence[int | None],
    sponsored: Sequence[bool | None],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, N_FEATURES) float32 FEATURES and their (n, N_FEATURES) bool mask (False: unknown, value 0).

    captions: None or blank = no caption; alts: Instagram's alt text, None when there is none;
    n_tagged / sponsored: None when unknown (a post being scored has not been tagged yet).
    """
    n = len(captions)
    x = np.zeros((n, N_FEATURES), np.float32)
    mask = np.zeros((n, N_FEATURES), bool)
    a, b = N_CAPTION, N_CAPTION + N_POST
    for i, (cap, alt, tagged, paid) in enumerate(zip(captions, alts, n_tagged, sponsored, strict=True)):
        if cap and cap.strip():
            x[i, :a], mask[i, :a] = caption_features(cap), True
        if tagged is not None:
            x[i, a], mask[i, a] = math.log1p(tagged), True
        if paid is not None:
            x[i, a + 1], mask[i, a + 1] = float(paid), True
        concepts = alt_concepts(alt)
        if concepts:
            x[i, b:], mask[i, b:] = alt_features(concepts), True
    return x, mask
