"""Words that flag a caption, by category.

Profanity, slurs and sexual terms: the English dictionary of ``glin-profanity`` (MIT, a
maintained package; 416 words and phrases, matched on word boundaries with its handling of
spacing and leetspeak), its words sorted here into ``hate_profanity`` (slurs and swearing)
and ``adult`` (the sexual ones). Words of that list that Instagram captions use innocently
(``sexy`` shoes, a ``nude`` lipstick, a ``butt`` workout, ``lmfao``) are ignored.

Arms, drugs/alcohol/tobacco and violence/death have no maintained package: the lists below
are this project's, written from the GARM category definitions (arms & ammunition; illegal
drugs, tobacco, e-cigarettes, vaping, alcohol; death, injury or military conflict) before
the labelled captions were read, plus the hashtag compounds Instagram uses for them
(``#craftbeer``, ``#winetime``, ``#gunsdaily``). Words with a common innocent sense were
left out (``shot``, ``shooting`` as in a photo shoot, ``coke``, ``joint``, ``blood orange``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

# word tables, a dozen words a line rather than one
# fmt: off
OWN_WORDS: dict[str, tuple[str, ...]] = {
    "arms": (
        "gun", "guns", "handgun", "handguns", "rifle", "rifles", "shotgun", "shotguns", "pistol", "pistols",
        "revolver", "revolvers", "firearm", "firearms", "ammo", "ammunition", "ar-15", "ar15", "ak-47", "ak47",
        "glock", "sniper", "assault rifle", "concealed carry", "second amendment", "2nd amendment", "gun range",
        "shooting range", "bullets", "weapon", "weapons", "gunsdaily", "gunlife", "gunsofinstagram", "2a",
        "pewpew", "nra",
    ),
    "drugs": (
        "beer", "beers", "wine", "wines", "vino", "whiskey", "whisky", "bourbon", "vodka", "tequila", "cocktail",
        "cocktails", "margarita", "margaritas", "mimosa", "mimosas", "sangria", "champagne", "prosecco", "booze",
        "boozy", "drunk", "tipsy", "hangover", "hungover", "brewery", "ipa", "craft beer", "happy hour",
        "wine tasting", "winery", "aperol", "spritz", "mojito", "martini", "liquor", "alcohol", "alcoholic",
        "craftbeer", "beerporn", "beerstagram", "beertime", "beerlover", "winelover", "winelovers", "winetime",
        "wineoclock", "winetasting", "wineporn", "instawine", "redwine", "whitewine", "cocktailhour",
        "cigarette", "cigarettes", "cigar", "cigars", "tobacco", "vape", "vapes", "vaping", "vapelife", "juul",
        "hookah", "shisha", "nicotine", "e-cig", "weed", "marijuana", "cannabis", "420", "stoned", "stoner",
        "cocaine", "mdma", "ecstasy", "lsd", "shrooms", "magic mushrooms", "heroin", "meth", "ketamine", "xanax",
        "blunt", "blunts", "thc", "weedstagram", "smoke weed",
    ),
    "violence": (
        "kill", "kills", "killed", "killing", "murder", "murdered", "murderer", "gore", "gory", "massacre",
        "stabbing", "stabbed", "terrorist", "terrorists", "terrorism", "suicide", "corpse", "dead body",
        "rest in peace", "r.i.p", "passed away", "funeral", "war", "warzone", "bombing", "genocide", "violence",
        "violent", "shooting victims", "mass shooting", "casualties",
    ),
}

# glin-profanity's words that are slurs or swearing; the rest of its list is sexual
HATE_PROFANITY = frozenset((
    "a$$", "@ss", "4ss", "apeshit", "arsehole", "ass", "asshat", "asshole", "assmunch", "asswipe", "b!tch",
    "bastard", "bastardized", "bastardo", "beaner", "beaners", "bitch", "bitches", "bollocks", "bullshit",
    "clusterfuck", "coon", "coons", "cunt", "darkie", "dipshit", "dumbass", "f*ck", "f@ck", "f4ck", "fvck",
    "phuck", "fuk", "faggot", "fuck", "fucker", "fuckface", "fuckin", "fucking", "fucktards", "fuq", "god damn",
    "honkey", "jackass", "jigaboo", "jiggaboo", "jiggerboo", "kike", "motherfucker", "negro", "neonazi",
    "nig nog", "nigga", "nigger", "paki", "piece of shit", "pissed", "pissing", "raghead", "retard", "retarded",
    "sh!t", "shit", "shite", "sh1t", "$hit", "$h!t", "shitblimp", "shithead", "shitshow", "shitty", "slanteye",
    "spic", "stfu", "swastika", "tosser", "towelhead", "tranny", "twat", "wtf",
))
# glin-profanity's words that Instagram captions mostly use innocently
IGNORED = (
    "sexy", "nude", "butt", "suck", "sucks", "bs", "mf", "lmfao", "omfg", "twinkie", "panties", "panty",
    "escort", "domination", "hardcore", "hard core", "kinky", "playboy", "tied up", "tight white", "taste my",
    "tongue in a", "girl on", "girl on top", "big black", "hot chick", "snatch", "swinger", "simp", "poof",
    "lolita", "tushy", "grope", "erotic", "sex", "busty", "booty call", "humping", "boob", "boobs", "hoe",
    "nipple", "nipples", "camgirl", "pissed",
)
# fmt: on

# how captions are matched against the words (not the words themselves); part of the screen's
# version, so a change screens every post again. 2: a hashtag's sign is not a letter
MATCHING = 2
_HASHTAG_SIGN = re.compile(r"(?<![\w#])#+")


@dataclass(frozen=True)
class WordHit:
    category: str
    word: str


@functools.lru_cache(maxsize=1)
def _own_patterns() -> dict[str, re.Pattern[str]]:
    out = {}
    for cat, words in OWN_WORDS.items():
        alts = sorted((re.escape(w).replace(r"\ ", r"[\s_-]+") for w in words), key=len, reverse=True)
        out[cat] = re.compile(r"(?<![\w-])(?:" + "|".join(alts) + r")(?![\w-])", re.IGNORECASE)
    return out


@functools.lru_cache(maxsize=1)
def _profanity_filter() -> Any:
    from glin_profanity import Filter

    return Filter(
        {
            "languages": ["english"],
            "word_boundaries": True,
            "ignore_words": list(IGNORED),
            "allow_obfuscated_match": False,
        }
    )


def caption_words(text: str) -> list[WordHit]:
    """The flagged words of a caption, each once per category, in category order."""
    if not text or not text.strip():
        return []
    hits: list[WordHit] = []
    for cat, pattern in _own_patterns().items():
        seen = dict.fromkeys(m.group(0).lower() for m in pattern.finditer(text))
        hits.extend(WordHit(cat, w) for w in seen)
    # glin-profanity reads '#' as a leetspeak 's' ("#cat" -> "scat"); a hashtag's sign (a '#'
    # that starts a word) is never a letter, so it goes before the check; inside a word it may
    # be one ("sh#t")
    found = _profanity_filter().check_profanity(_HASHTAG_SIGN.sub(" ", text)).get("profane_words") or []
    for w in dict.fromkeys(str(w).lower() for w in found):
        if w not in IGNORED:
            hits.append(WordHit("hate_profanity" if w in HATE_PROFANITY else "adult", w))
    return hits
