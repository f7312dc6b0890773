"""The demo's follower history: every account's count one and two months before the corpus,
so a newcomer's account view plots followers over time and reads a growth rate.

Each month is an accounts-only corpus folder (``history/<date>/accounts.jsonl``, every row
with its ``followers_at``) that ``congruence demo`` ingests beside the corpus; the corpus's own
counts are dated by its ingest. An account grows 0.5-4 % a month, seeded.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from congruence.indexer.corpus_write import account_row, write_jsonl
from congruence.store.follower_history import FOLLOWERS_AT
from congruence.store.rows import Account

MONTHS = 2
DAYS = 30


def write_history(out: Path, accounts: Sequence[Account], now: datetime, seed: int = 7) -> list[Path]:
    """The folders of the months before ``now``, oldest first (written under ``out/history``)."""
    rng = random.Random(seed * 1000 + 29)
    growth = {a.id: rng.uniform(0.005, 0.04) for a in accounts}
    folders = []
    for months in range(MONTHS, 0, -1):
        at = (now - timedelta(days=DAYS * months)).replace(microsecond=0)
        folder = out / "history" / at.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        rows = [
            replace(
                a,
                followers=round(a.followers / (1 + growth[a.id]) ** months),
                extra=a.extra | {FOLLOWERS_AT: at.isoformat()},
            )
            for a in accounts
            if a.followers is not None
        ]
        write_jsonl(folder / "accounts.jsonl", map(account_row, rows))
        folders.append(folder)
    return folders
