"""Cleaning the fields of real Instagram posts: categories, captions, alt text, brand handles.

Pure functions over strings, so the corpus builder and its tests share one definition of
"clean".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

CATEGORIES = ("beauty", "family", "fashion", "fitness", "food", "interior", "other", "pet", "travel")
UNKNOWN = ""
# C0/C1 controls and NUL break JSON consumers and the corpus reader (which refuses NUL);
# newlines and tabs carry the caption's layout, so they stay
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# line and paragraph separators are newlines to a person, but str.splitlines() in other
# tools would cut a JSONL row at them (JSON leaves them unescaped)
_SEPARATORS = str.maketrans({"\u2028": "\n", "\u2029": "\n"})
_SCORE_SUFFIX = re.compile(r"\s+[0-9.]+$")
# Instagram's placeholder when its classifier saw nothing: no information about the image
_EMPTY_ALT = ("no photo description available", "")


def clean_category(raw: object) -> str:
    """One of CATEGORIES, or "" (unknown) for null, non-strings and values too far from any.

    The source has score-suffixed labels ("fashion 0.5") and typos ("fasion"); a close
    match (difflib ratio >= 0.8) is taken as the intended label, anything else ("by") is
    unknown rather than a tenth category.
    """
    if not isinstance(raw, str):
        return UNKNOWN
    label = _SCORE_SUFFIX.sub("", raw.strip().lower())
    if label in CATEGORIES:
        return label
    close = difflib.get_close_matches(label, CATEGORIES, n=1, cutoff=0.8)
    return close[0] if close else UNKNOWN


def clean_text(raw: object) -> str:
    """The string without control characters (newlines and tabs kept), stripped; "" for non-strings."""
    return _CONTROL.sub("", raw.translate(_SEPARATORS)).strip() if isinstance(raw, str) else ""


def informative_alt(raw: object) -> str:
    """Instagram's automatic image description, or "" when it says nothing about the image."""
    alt = clean_text(raw).rstrip(".")
    return "" if alt.lower() in _EMPTY_ALT else alt


def with_alt(caption: str, alt: str) -> str:
    """The caption with the alt text as its last line (the text encoder reads both)."""
    return f"{caption}\n{alt}" if alt else caption


def handle_masker(handles: Iterable[str], replacement: str = "@brand") -> Callable[[str], str]:
    """A function replacing ``@handle`` of any of ``handles`` by ``replacement``.

    Case-insensitive; a handle must end where the word ends, so masking ``zara`` leaves
    ``@zarahome`` and ``@zara.home`` alone. Longer handles are tried first. Hashtags stay:
    most that equal a handle are topics (#ootd, #style, #london), which are content.
    """
    names = sorted({h.lower() for h in handles if h}, key=lambda h: (-len(h), h))
    if not names:
        return lambda text: text
    alternation = "|".join(re.escape(h) for h in names)
    pattern = re.compile(rf"(?<![\w.])@(?:{alternation})(?![\w]|\.\w)", re.IGNORECASE)
    return lambda text: pattern.sub(replacement, text)
