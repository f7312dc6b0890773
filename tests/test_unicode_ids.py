"""Unicode and URL-unfriendly ids, handles and captions survive ingest, the API and its URLs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest

from .server import serving

ODD = {  # influencer id -> handle
    "zoë/ski#1": "zoë.ski 🏔️",
    "نادية%20": "نادية_رحلات",
    "a\u200bb?c": "ZWSP\u200bhandle",
    "e\u0301clair&co": "e\u0301clair",
}


def test_odd_ids_and_handles_round_trip(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    with (corpus / "accounts.jsonl").open("a", encoding="utf-8") as f:
        for i, (acc, handle) in enumerate(ODD.items()):
            f.write(
                json.dumps(
                    {"id": acc, "kind": "influencer", "handle": handle, "category": "fitness", "followers": 10_000 + i},
                    ensure_ascii=False,
                )
                + "\n"
            )
    with (corpus / "posts.jsonl").open("a", encoding="utf-8") as f:
        for acc in ODD:
            f.write(
                json.dumps(
                    {
                        "id": f"{acc}::p0",
                        "account_id": acc,
                        "image": "images/brand_peakfit_p0.jpg",
                        "caption": "ski 🎿 e\u0301t\u00e9 \u202eRTL\u202c ‏שלום",
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    assert ingest(corpus, settings).exit_code == 0
    with serving(settings.with_(rate_limit=0), auth=False) as url, httpx.Client(base_url=url, timeout=60) as c:
        body = c.post("/v1/match", json={"brand_id": "brand_peakfit", "k": 30, "posts": 1}).json()
        hits = {h["influencer_id"]: h for h in body["data"]}
        assert set(ODD) <= set(hits)
        for acc, handle in ODD.items():
            hit = hits[acc]
            assert hit["handle"] == handle
            account = c.get(hit["account_url"]).json()
            assert account["id"] == acc and account["handle"] == handle
            assert account["posts"][0]["caption"].startswith("ski 🎿 e\u0301t\u00e9")
            similar = c.get(hit["similar_url"], params={"k": 3})
            assert similar.status_code == 200 and acc not in {h["influencer_id"] for h in similar.json()["data"]}
            thumb = c.get(hit["top_posts"][0]["thumbnail_url"])
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
            explain = c.get("/v1/explain", params={"brand": "brand_peakfit", "post": f"{acc}::p0"})
            assert explain.status_code == 200
