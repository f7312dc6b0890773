"""Ranking quality of the trained congruence head on held-out brands, through the product CLI.

For a corpus folder holding ``test_brands.txt``: ``congruence ingest FOLDER --json``, then
``congruence train --json --test-brands FOLDER/test_brands.txt --variants all ...``, each in
a subprocess with ``CONGRUENCE_HOME`` set to a persistent, git-ignored cache under
``bench/.cache`` (ingest is incremental: a rerun re-encodes nothing). The head is trained
and evaluated exactly as a user would; the section prints every method's metrics and
checks the targets.

A cache home holds one corpus at a time: when the corpus files change, the accounts of the
previous one are deleted first (``congruence delete``), since matches and accounts absent
from the new files would otherwise stay in the store and be trained on. Embeddings are
cached by content, so re-ingesting after that costs no encoding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Section, Table
from bench.ranking_breakdown import breakdown

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
MARKER = "bench-corpus.json"
METHODS = (
    "random",
    "pooled_cosine",
    "category_prior",
    "head",
    "head+category",
    "head+category_served",
    "head_mean",
    "head_noaux",
    "head_mean_noaux",
    "shared",
    "shared_mean",
    "shared_noaux",
    "shared_mean_noaux",
)
COLUMNS = (
    ("auc", "AUC"),
    ("cauc", "cAUC"),
    ("recall@10", "R@10"),
    ("recall@50", "R@50"),
    ("medr", "MedR"),
    ("mrr", "MRR"),
    ("n_brands", "brands"),
)


@dataclass(frozen=True)
class Targets:
    """What the trained head must reach on held-out brands. group_auc: per brand group
    (the part of ``brand_kind`` before ':'), the head's mean AUC; direct_loss: how much AUC
    the head may lose against the shared head on the direct brands (None: not checked)."""

    auc: float = 0.95
    recall_ratio: float = 1.5  # head recall@10 over pooled cosine's
    group_auc: tuple[tuple[str, float], ...] = ()
    direct_loss: float | None = None
    product_auc: float | None = None  # the cold-start product's (``head+category``) AUC, at least
    product_loss: float | None = None  # how much AUC the cold-start product may lose against the head
    cauc: float | None = None  # the head's cAUC, at least
    cauc_vs_cosine: bool = False  # the head's cAUC at least pooled cosine's
    guard: bool = False  # `congruence train`'s guard would put the head in service


PHOTO_TARGETS = Targets(0.95, 1.5, (("lookalike", 0.90),), 0.01, product_loss=0.01)
BRAND_TAG_TARGETS = Targets(0.80, 3.0, product_auc=0.74)
# issue 36: the head keeps which creators within the partner vertical (cAUC there) and the vertical
FINE_TARGETS = Targets(0.97, 1.5, cauc=0.90, cauc_vs_cosine=True, guard=True)


@dataclass(frozen=True)
class RankingConfig:
    """name: the section's name; corpus: a folder with test_brands.txt; home: its cache;
    train_args: extra ``congruence train`` flags; targets: None to only report."""

    name: str
    corpus: Path
    home: Path
    train_args: tuple[str, ...] = ()
    targets: Targets | None = Targets()
    timeout_s: float = 4 * 3600.0  # 8 variants on a busy 2-core machine


@dataclass(frozen=True)
class CliRun:
    """The JSON object a ``congruence ... --json`` command printed, and its wall time."""

    doc: dict[str, Any]
    seconds: float


def cli(args: list[str], home: Path, timeout_s: float) -> CliRun:
    """Run ``python -m congruence ARGS`` against ``home``; RuntimeError unless it exits 0."""
    env = {**os.environ, "CONGRUENCE_HOME": str(home)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "congruence", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"congruence {args[0]} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"congruence {args[0]} printed nothing on stdout")
    return CliRun(json.loads(lines[-1]), seconds)


def fingerprint(corpus: Path) -> str:
    """SHA-256 over the corpus's JSONL files (image bytes are checked by ingest itself)."""
    h = hashlib.sha256()
    for name in ("accounts.jsonl", "posts.jsonl", "matches.jsonl"):
        path = corpus / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return h.hexdigest()


def account_ids(corpus: Path) -> list[str]:
    with (corpus / "accounts.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def _read_marker(home: Path) -> dict[str, Any] | None:
    path = home / MARKER
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _write_marker(home: Path, fp: str | None, ids: list[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text(json.dumps({"fingerprint": fp, "accounts": sorted(ids)}) + "\n", encoding="utf-8")


def sync_store(corpus: Path, home: Path, timeout_s: float) -> tuple[CliRun, int]:
    """Ingest ``corpus`` into ``home`` after deleting a previous, different corpus.

    Returns the ingest run and how many stale accounts were deleted. The marker lists
    every account that may be in the store until the ingest has succeeded, so an
    interrupted run is cleaned up by the next.
    """
    fp, ids = fingerprint(corpus), account_ids(corpus)
    old = _read_marker(home)
    _write_marker(home, None, sorted(set(ids) | set(old["accounts"] if old else [])))
    deleted = 0
    if old is not None and old["fingerprint"] != fp and old["accounts"]:
        gone = cli(["delete", *old["accounts"], "--json", "--missing-ok"], home, timeout_s)
        deleted = int(gone.doc.get("deleted", 0))
    run = cli(["ingest", str(corpus), "--json"], home, timeout_s)
    _write_marker(home, fp, ids)
    return run, deleted


def train(cfg: RankingConfig) -> CliRun:
    held = cfg.corpus / "test_influencers.txt"
    args = [
        "train",
        "--json",
        "--test-brands",
        str(cfg.corpus / "test_brands.txt"),
        "--variants",
        "all",
        "--no-activate",
        *(["--test-influencers", str(held)] if held.exists() else []),
        *cfg.train_args,
    ]
    return cli(args, cfg.home, cfg.timeout_s)


def metric_rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    names = [m for m in METHODS if m in results] + [m for m in results if m not in METHODS]
    return [{"method": m, **{label: results[m].get(key) for key, label in COLUMNS}} for m in names]


def check_targets(
    results: dict[str, dict[str, Any]],
    targets: Targets,
    groups: list[Row] = (),  # type: ignore[assignment]
    guard: bool | None = None,
) -> list[Row]:
    """One row per target: the value reached, the threshold and whether it is met. guard: the
    CLI's ``beats_cosine`` (None: unknown, which misses a guard target)."""
    head, base = results.get("head", {}), results.get("pooled_cosine", {})
    auc = head.get("auc")
    r_head, r_base = head.get("recall@10"), base.get("recall@10")
    ratio = r_head / r_base if r_head is not None and r_base else None
    checks: list[tuple[str, Any, float, bool]] = [
        ("head AUC", auc, targets.auc, False),
        ("head R@10 / pooled-cosine R@10", ratio, targets.recall_ratio, False),
    ]
    group_auc: dict[tuple[Any, Any], Any] = {(r["method"], r["brands"]): r.get("AUC") for r in groups}
    for group, threshold in targets.group_auc:
        checks.append((f"head AUC, {group} brands", group_auc.get(("head", group)), threshold, False))
    if targets.direct_loss is not None:
        two, shared = group_auc.get(("head", "direct")), group_auc.get(("shared", "direct"))
        loss = shared - two if two is not None and shared is not None else None
        checks.append(("direct brands: AUC lost against the shared head", loss, targets.direct_loss, True))
    blended = "head+category" in results
    product = results["head+category"].get("auc") if blended else auc  # no blend learned: the product is the head
    if targets.product_auc is not None:
        checks.append(("product (head+category) AUC", product, targets.product_auc, False))
    if targets.product_loss is not None:
        loss = auc - product if auc is not None and product is not None else None
        checks.append(("product (head+category): AUC lost against the head", loss, targets.product_loss, True))
    cauc, base_cauc = head.get("cauc"), base.get("cauc")
    if targets.cauc is not None:
        checks.append(("head cAUC", cauc, targets.cauc, False))
    if targets.cauc_vs_cosine:
        gain = cauc - base_cauc if cauc is not None and base_cauc is not None else None
        checks.append(("head cAUC - pooled-cosine cAUC", gain, 0.0, False))
    if targets.guard:
        served = None if guard is None else float(guard)
        checks.append(("the guard puts the head in service (1: yes)", served, 1.0, False))
    rows: list[Row] = []
    for target, value, threshold, at_most in checks:
        met = value is not None and (value <= threshold if at_most else value >= threshold)
        rows.append(
            {
                "target": target,
                "value": value,
                "threshold": ("<= " if at_most else ">= ") + f"{threshold:g}",
                "met": "yes" if met else "NO",
            }
        )
    return rows


def _info(corpus: Path) -> dict[str, Any]:
    path = corpus / "corpus_info.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _notes(cfg: RankingConfig, info: dict[str, Any], deleted: int) -> list[str]:
    flags = " ".join(cfg.train_args) or "(defaults)"
    stale = f"; deleted {deleted} accounts of a previous corpus" if deleted else ""
    return [
        (
            f"corpus {cfg.corpus}: brands {info.get('brands')}, influencers {info.get('influencers')}, "
            f"{info.get('posts')} posts, {info.get('images')} image files"
        ),
        f"CONGRUENCE_HOME={cfg.home}; train flags: {flags}{stale}",
        "per-group rows: means of the CLI's per-brand metrics; every brand ranks the same candidates",
    ]


def _guard_note(guard: bool | None, doc: dict[str, Any]) -> str:
    """Whether `congruence train` (run with --no-activate here) would have put the head in service."""
    if guard is None:
        return "unknown (no verdict in the train output)"
    state = "would put the head in service" if guard else "would keep pooled cosine (the head is not put in service)"
    return f"{state}: {doc.get('model', {}).get('verdict', '')}"


def _timings(ingest: CliRun, trained: CliRun) -> Table:
    rep = ingest.doc
    return Table(
        "timings",
        [
            {
                "step": "ingest",
                "s": ingest.seconds,
                "images encoded": rep.get("images_encoded"),
                "captions encoded": rep.get("texts_encoded"),
                "posts new": rep.get("posts_new"),
            },
            {"step": "train + evaluate", "s": trained.seconds},
        ],
    )


def run(cfg: RankingConfig) -> Section:
    """Ingest, train and evaluate through the CLI; the section's details hold every JSON."""
    section = Section(cfg.name)
    ingest, deleted = sync_store(cfg.corpus, cfg.home, cfg.timeout_s)
    trained = train(cfg)
    results: dict[str, dict[str, Any]] = trained.doc.get("results", {})
    prior = category_prior(cfg.corpus)
    if prior is not None:
        results = {**results, "category_prior": prior}
    section.tables.append(
        Table(f"held-out brands: {cfg.corpus.name} (congruence train --variants all)", metric_rows(results))
    )
    groups = breakdown(cfg.corpus, trained.doc)
    if groups:
        section.tables.append(Table("held-out brands per group", groups))
    guard = trained.doc.get("model", {}).get("beats_cosine")
    section.notes.append(f"guard: {_guard_note(guard, trained.doc)}")
    if cfg.targets is not None:
        rows = check_targets(results, cfg.targets, groups, guard)
        section.tables.append(Table("targets", rows))
        section.details["targets_met"] = all(r["met"] == "yes" for r in rows)
    section.tables.append(_timings(ingest, trained))
    info = _info(cfg.corpus)
    section.notes += _notes(cfg, info, deleted)
    section.details.update(
        {
            "config": {"corpus": str(cfg.corpus), "home": str(cfg.home), "train_args": list(cfg.train_args)},
            "corpus_info": info,
            "ingest": ingest.doc,
            "ingest_s": ingest.seconds,
            "train": trained.doc,
            "train_s": trained.seconds,
            "groups": groups,
        }
    )
    return section


SHARED = REPO.parent / "shared" / "data"


def skipped(name: str, reason: str) -> Section:
    section = Section(name, notes=[f"skipped: {reason}"])
    section.details["skipped"] = reason
    return section


def category_prior(corpus: Path) -> dict[str, Any] | None:
    """The category-prior baseline of a corpus whose brands carry ``partner_categories`` (the
    brand-tag benchmark): each candidate scored by the share of the brand's training-side
    partners in its category; the candidates are ``test_influencers.txt``. None otherwise."""
    from congruence.training.ranking_metrics import evaluate_rankings

    held = corpus / "test_influencers.txt"
    if not held.exists():
        return None
    accounts = {a["id"]: a for a in map(json.loads, (corpus / "accounts.jsonl").open(encoding="utf-8"))}
    brands = sorted(b for b in (corpus / "test_brands.txt").read_text(encoding="utf-8").split() if b)
    cands = sorted(i for i in held.read_text(encoding="utf-8").split() if i)
    if any("partner_categories" not in accounts[b] for b in brands):
        return None
    column = {c: j for j, c in enumerate(cands)}
    cats = [accounts[c]["category"] or "unknown" for c in cands]
    scores = np.array([[accounts[b]["partner_categories"].get(c, 0.0) for c in cats] for b in brands])
    positives = np.zeros(scores.shape, bool)
    row = {b: i for i, b in enumerate(brands)}
    for m in map(json.loads, (corpus / "matches.jsonl").open(encoding="utf-8")):
        if m["brand_id"] in row and m["influencer_id"] in column:
            positives[row[m["brand_id"]], column[m["influencer_id"]]] = True
    metrics = evaluate_rankings(
        scores, positives, brands, [accounts[b]["category"] for b in brands], [accounts[c]["category"] for c in cands]
    )
    return metrics.to_dict()


def newest_head(models_dir: Path, section: str) -> Path:
    """The newest head a ``python -m bench --only SECTION`` run saved under ``models_dir``."""
    heads = sorted((models_dir / "heads").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not heads:
        raise SystemExit(f"no trained head under {models_dir}: run `python -m bench --only {section}` first")
    return heads[-1]


def standalone(
    argv: list[str] | None, prog: str, doc: str, home: str, corpus: str, run: Callable[[Path, Path], Section]
) -> int:
    """``main`` of a script that reads a ranking section's home and corpus (``--home``,
    ``--corpus``, defaults under bench/.cache): runs it, prints and saves its section."""
    from bench.common import machine_info, report_section

    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n\n")[0])
    p.add_argument("--home", type=Path, default=CACHE / home)
    p.add_argument("--corpus", type=Path, default=CACHE / corpus)
    args = p.parse_args(argv)
    section = run(args.home, args.corpus)
    return report_section(section, section.name, machine_info())
