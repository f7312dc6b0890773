"""The ranking sections of ``python -m bench``: ``ranking-photos``, ``ranking-photos-fine`` and
``ranking-instagram``, each a corpus built from the shared data and run through
``bench.ranking.run`` (train with ``--test-brands``, then the targets)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.common import Section
from bench.ranking import (
    BRAND_TAG_TARGETS,
    CACHE,
    FINE_TARGETS,
    PHOTO_TARGETS,
    SHARED,
    RankingConfig,
    Targets,
    run,
    skipped,
)

# flags of `congruence train` for the photo benchmark: the head is still improving after the
# default 10 epochs here (R@10 0.244 at 10, 0.264 at 30, 0.250 at 60 epochs with seed 0;
# 0.258 and 0.264 with seeds 1 and 2 at 30)
PHOTO_TRAIN_ARGS: tuple[str, ...] = ("--epochs", "30")
BRAND_TAG_TRAIN_ARGS: tuple[str, ...] = ()


def _photo_section(
    name: str, stem: str, build: Callable[[Path, Path, bool], object], quick: bool, targets: Targets
) -> Section:
    """A section on a corpus built from the shared photos (tiny with ``quick``, targets unchecked)."""
    photos_dir = SHARED / "photos"
    if not (photos_dir / "labels.csv").exists():
        return skipped(name, f"real photos not found at {photos_dir}")
    suffix = "-quick" if quick else ""
    corpus = CACHE / f"{stem}-corpus{suffix}"
    build(photos_dir, corpus, quick)
    home = CACHE / f"{stem}-home{suffix}"
    return run(RankingConfig(name, corpus, home, PHOTO_TRAIN_ARGS, targets=None if quick else targets))


def photos_section(quick: bool) -> Section:
    """``ranking-photos``: the corpus of congruence/datasets/photo_corpus.py."""
    from congruence.datasets.photo_corpus import PhotoCorpusConfig, build_photo_corpus

    def build(photos: Path, corpus: Path, quick: bool) -> object:
        return build_photo_corpus(photos, corpus, PhotoCorpusConfig.quick() if quick else PhotoCorpusConfig())

    return _photo_section("ranking-photos", "photos", build, quick, PHOTO_TARGETS)


def fine_section(quick: bool) -> Section:
    """``ranking-photos-fine``: the fine-grained kind of congruence/datasets/photo_fine.py (issue 36:
    which creators within the partner vertical)."""
    from congruence.datasets.photo_fine import FineCorpusConfig, build_fine_corpus

    def build(photos: Path, corpus: Path, quick: bool) -> object:
        return build_fine_corpus(photos, corpus, FineCorpusConfig.quick() if quick else FineCorpusConfig())

    return _photo_section("ranking-photos-fine", "photos-fine", build, quick, FINE_TARGETS)


def instagram_section(quick: bool) -> Section:
    """``ranking-instagram``: the real brand-tag benchmark of congruence/datasets/brand_tags.py
    (text and alt text; ``quick``: the first 6,000 posts, 2 epochs, targets unchecked)."""
    from congruence.datasets.brand_tags import BrandTagConfig, build_brand_tag_corpus

    posts_gz = SHARED / "instagram" / "posts.jsonl.gz"
    if not posts_gz.exists():
        return skipped("ranking-instagram", f"Instagram posts not found at {posts_gz}")
    config = BrandTagConfig(min_taggers=5, max_posts=6000) if quick else BrandTagConfig()
    suffix = "-quick" if quick else ""
    corpus = build_brand_tag_corpus(posts_gz, CACHE / f"brand-tags-corpus{suffix}", config)
    args = ("--epochs", "2") if quick else BRAND_TAG_TRAIN_ARGS
    home = CACHE / f"brand-tags-home{suffix}"
    return run(RankingConfig("ranking-instagram", corpus, home, args, targets=None if quick else BRAND_TAG_TARGETS))
