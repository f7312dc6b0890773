"""What every format reader shares once its rows are read: which accounts are brands, their
categories, duplicate ids, posts of unknown accounts, and matches derived from tags.

A reader collects ``Sourced`` accounts and ``Post`` rows (each knowing the file and line or
row it came from) and hands them to ``assemble``, which returns the ``Corpus`` ingest stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from congruence.indexer.corpus import Corpus, Post, RowError
from congruence.store.rows import Account, Match

KnownAccounts = Callable[[str], str | None]


@dataclass(frozen=True)
class Named:
    """An account name given by the user (a brand handle, or a handle's category), with where
    it was given: a file and line, or the flag (``file`` '--brands', line 0)."""

    name: str
    file: str = "--brands"
    line: int = 0


@dataclass(frozen=True)
class SourceOptions:
    """What a reader is told besides its files.

    brands: accounts (handle or id, any case) that are brands; every other account is an
    influencer unless the input says otherwise (a ``kind`` column). categories: account
    (handle or id, any case) -> category, over what the input says. matches_from_tags:
    derive (brand, influencer) matches: an influencer who tagged a brand of the corpus in a
    post, or was sponsored by one (a paid partnership naming it).
    """

    brands: tuple[Named, ...] = ()
    categories: Mapping[str, str] = field(default_factory=dict)
    matches_from_tags: bool = False


@dataclass(frozen=True)
class Sourced:
    """An account row and where it was read."""

    account: Account
    file: str
    line: int = 0


def _key(name: str) -> str:
    return name.strip().lstrip("@").lower()


def _with_names(rows: list[Sourced], options: SourceOptions) -> list[Sourced]:
    brands = {_key(n.name) for n in options.brands}
    cats = {_key(k): v.strip().lower() for k, v in options.categories.items()}
    out = []
    for r in rows:
        a = r.account
        keys = {_key(a.id), _key(a.handle)}
        kind = "brand" if keys & brands else a.kind
        category = next((cats[k] for k in (_key(a.id), _key(a.handle)) if k in cats), a.category)
        out.append(replace(r, account=replace(a, kind=kind, category=category)))
    return out


def _dedupe_accounts(rows: list[Sourced], errors: list[RowError]) -> list[Account]:
    first: dict[str, Sourced] = {}
    for r in rows:
        seen = first.get(r.account.id)
        if seen is not None:
            where = f"{seen.file}:{seen.line}" if seen.line else seen.file
            errors.append(RowError(r.file, r.line, f"duplicate account {r.account.id!r} (first in {where})"))
            continue
        first[r.account.id] = r
    return [r.account for r in first.values()]


def _checked_posts(posts: Iterable[Post], kind_of: KnownAccounts, errors: list[RowError]) -> list[Post]:
    first: dict[str, Post] = {}
    for p in posts:
        if kind_of(p.account_id) is None:
            errors.append(
                RowError(
                    p.source,
                    p.line,
                    f"post {p.id!r} of an unknown account {p.account_id!r}"
                    " (not in the accounts read, nor in the store)",
                )
            )
        elif p.id in first:
            q = first[p.id]
            where = f"{q.source}:{q.line}" if q.line else q.source
            errors.append(RowError(p.source, p.line, f"duplicate post id {p.id!r} (first in {where})"))
        else:
            first[p.id] = p
    return list(first.values())


def _unfound_brands(
    options: SourceOptions, accounts: list[Account], known: KnownAccounts, errors: list[RowError]
) -> None:
    here = {_key(a.id) for a in accounts} | {_key(a.handle) for a in accounts}
    for n in options.brands:
        if _key(n.name) not in here and known(_key(n.name)) != "brand":
            errors.append(
                RowError(n.file, n.line, f"brand {n.name!r} is not among the accounts read (nor a brand in the store)")
            )


def tags_of(post: Post) -> tuple[str, ...]:
    """Accounts a post names: those tagged in it and its paid-partnership sponsors."""
    sponsors = post.extra.get("sponsors") or ()
    return tuple(post.tagged) + tuple(s for s in sponsors if isinstance(s, str))


def matches_from_tags(posts: Iterable[Post], kind_of: KnownAccounts) -> list[Match]:
    """(brand, influencer) for every influencer post that tags a brand or names it as sponsor,
    once per pair, in post order."""
    pairs: dict[Match, None] = {}
    for p in posts:
        if kind_of(p.account_id) != "influencer":
            continue
        for t in tags_of(p):
            for name in dict.fromkeys((t, _key(t))):
                if kind_of(name) == "brand":
                    pairs[Match(name, p.account_id)] = None
                    break
    return list(pairs)


def assemble(
    root: Path,
    accounts: list[Sourced],
    posts: Iterable[Post],
    options: SourceOptions,
    known: KnownAccounts,
    errors: list[RowError],
) -> Corpus:
    """The corpus of these rows: brands and categories named, duplicates and posts of unknown
    accounts refused (one error each), matches derived from tags when asked."""
    kept = _dedupe_accounts(_with_names(accounts, options), errors)
    _unfound_brands(options, kept, known, errors)
    kinds = {a.id: a.kind for a in kept}

    def kind_of(acc_id: str) -> str | None:
        return kinds.get(acc_id) or known(acc_id)

    checked = _checked_posts(posts, kind_of, errors)
    matches = matches_from_tags(checked, kind_of) if options.matches_from_tags else []
    errors.sort(key=lambda e: (e.file, e.line))
    return Corpus(root=root.resolve(), accounts=kept, posts=checked, matches=matches, errors=errors)


def read_names(path: Path) -> tuple[Named, ...]:
    """Handles one a line ('#' comments and blank lines skipped; a leading '@' dropped)."""
    out = []
    for i, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if name:
            out.append(Named(name.lstrip("@"), path.name, i))
    return tuple(out)


def read_categories(path: Path) -> dict[str, str]:
    """``handle,category`` one a line (a header line 'handle,category' is skipped)."""
    out: dict[str, str] = {}
    for i, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or (i == 1 and line.lower().replace(" ", "") == "handle,category"):
            continue
        handle, sep, category = line.partition(",")
        if not sep or not handle.strip():
            raise ValueError(f"{path.name}:{i}: expected 'handle,category', got {line[:80]!r}")
        out[handle.strip().lstrip("@")] = category.strip()
    return out
