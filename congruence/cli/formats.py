"""`congruence ingest --format instaloader|table`: the options of the other input formats, and
the corpus reader they make for ``indexer.ingest``."""

from __future__ import annotations

import argparse
from pathlib import Path

from congruence.indexer.corpus import CorpusReader, read_corpus

FORMATS = ("jsonl", "instaloader", "table")
_SOURCE_OPTIONS = ("brands", "brands_file", "categories", "matches_from_tags")


def format_args(p: argparse.ArgumentParser) -> None:
    """--format and the options of the Instaloader and table readers."""
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl (default): a corpus folder (accounts.jsonl, posts.jsonl, matches.jsonl); "
        "instaloader: a folder of Instaloader profile downloads; table: a CSV or Parquet "
        "table of posts (with --accounts)",
    )
    p.add_argument("--accounts", metavar="ACCOUNTS", help="table: the accounts table (.csv or .parquet)")
    p.add_argument(
        "--map",
        nargs="+",
        metavar="FIELD=COLUMN",
        default=None,
        help="table: column names, e.g. likes=like_count posts.id=shortcode accounts.id=username "
        "(fields: id, account_id, image, caption, likes, comments, ts, sponsored, tagged; "
        "accounts: id, kind, handle, category, followers)",
    )
    p.add_argument(
        "--brands",
        nargs="+",
        metavar="HANDLE",
        default=None,
        help="instaloader, table: the accounts that are brands (the others are influencers)",
    )
    p.add_argument("--brands-file", metavar="FILE", help="instaloader, table: brand handles, one a line")
    p.add_argument(
        "--categories",
        metavar="FILE",
        help="instaloader, table: 'handle,category' lines, over the category the input gives",
    )
    p.add_argument(
        "--matches-from-tags",
        action="store_true",
        help="instaloader, table: a known match for every influencer who tagged a brand of the "
        "corpus in a post, or was sponsored by one",
    )


def source_of(args: argparse.Namespace) -> tuple[Path, CorpusReader]:
    """(the path ingest is given, the reader of it), or FileNotFoundError / ValueError with
    the exact problem, before anything is read."""
    fmt = getattr(args, "format", "jsonl") or "jsonl"
    path = Path(args.folder)
    if fmt == "jsonl":
        given = [f"--{o.replace('_', '-')}" for o in (*_SOURCE_OPTIONS, "accounts", "map") if getattr(args, o, None)]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --format instaloader or table")
        if not path.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {path}")
        return path, read_corpus
    options = _options(args)
    if fmt == "instaloader":
        from congruence.indexer.formats.instaloader import read_instaloader

        if getattr(args, "accounts", None) or getattr(args, "map", None):
            raise ValueError("--accounts, --map: only with --format table")
        if not path.is_dir():
            raise FileNotFoundError(f"Instaloader folder not found: {path}")
        return path, lambda root, known: read_instaloader(root, known, options)
    from congruence.indexer.formats.tables import ColumnMap, read_tables

    cmap = ColumnMap.parse(getattr(args, "map", None) or [])
    accounts = Path(args.accounts) if getattr(args, "accounts", None) else None
    for table, p in (("posts", path), ("accounts", accounts)):
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"{table} table not found: {p}")
    return path, lambda posts, known: read_tables(posts, accounts, known, cmap, options)


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from congruence.indexer.formats.common import Named, SourceOptions, read_categories, read_names

    for flag, name in (("--brands-file", "brands_file"), ("--categories", "categories")):
        if getattr(args, name, None) and not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"{flag}: file not found: {getattr(args, name)}")
    brands = tuple(Named(b.lstrip("@")) for b in getattr(args, "brands", None) or ())
    if getattr(args, "brands_file", None):
        brands += read_names(Path(args.brands_file))
    cats = read_categories(Path(args.categories)) if getattr(args, "categories", None) else {}
    return SourceOptions(brands, cats, bool(getattr(args, "matches_from_tags", False)))
