"""`congruence demo`, the README's first command, as a real process on a fresh home."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import httpx
import pytest
import torch
from PIL import Image

from congruence.core.settings import Settings
from congruence.engagement.checkpoint import ACTIVE_KEY as ENGAGEMENT_KEY
from congruence.engagement.checkpoint import checkpoint_path, load_active
from congruence.store.records import Store

from .server import free_port
from .serving_proc import ROOT, cli_process, listening_addresses, wait_until_up

pytestmark = pytest.mark.slow


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), color).save(buf, "PNG")
    return buf.getvalue()


def test_demo_builds_trains_and_serves_on_loopback_without_auth(env: Settings) -> None:
    port = free_port()
    corpus = env.home / "demo-corpus"
    assert not corpus.exists()
    url = f"http://127.0.0.1:{port}/"
    with cli_process("demo", "--port", str(port), until=f"serving on {url}") as (_, lines):
        out = "".join(lines)
        assert "building the demo corpus" in out and "training the congruence head" in out
        assert "training the engagement model" in out and "[no auth: loopback only]" in out
        # the goods brands partner with another category's creators: the head beats cosine, and says by how much
        head_auc, cosine_auc = map(
            float,
            re.search(
                r"in service: held-out AUC ([0-9.]+) vs pooled cosine ([0-9.]+) "
                r"\([+-][0-9.]+\), R@10",
                out,
            ).groups(),
        )  # type: ignore[union-attr]
        assert head_auc > cosine_auc
        assert (corpus / "accounts.jsonl").is_file() and len(list((corpus / "images").glob("*.jpg"))) > 300
        wait_until_up(url)
        assert listening_addresses(port) == {"127.0.0.1"}  # loopback only, never 0.0.0.0

        page = httpx.get(url, timeout=60)
        assert page.status_code == 200 and "<title>Congruence" in page.text
        assert httpx.get(url + "score", timeout=60).status_code == 200
        ready = httpx.get(url + "readyz", timeout=60).json()
        assert ready["ready"] is True and ready["head"] and ready["influencers"] == 60
        r = httpx.post(url + "v1/match", json={"brand_id": "brand_peakfit", "k": 5, "micro": True}, timeout=60)
        assert r.status_code == 200, r.text  # no key needed
        body = r.json()
        assert body["count"] == 5 and body["ranking"].startswith(f"congruence head {ready['head']}")
        # the demo's creators tag brands: the head carries a learned fusion, and matches rank with it
        assert "collaboration fusion learned on" in out
        assert body["ranking"].endswith("learned fusion)") and "signals: content + collaboration (" in body["ranking"]
        r = httpx.post(url + "v1/match", json={"brand_id": "brand_peakfit", "k": 5, "signals": "content"}, timeout=60)
        assert r.status_code == 200 and r.json()["ranking"].endswith("signals: content only (signals=content)")
        brand = httpx.get(url + "v1/accounts/brand_peakfit", timeout=60).json()
        partners = {e["account_id"] for e in brand["partners"]}
        tagged_by = {e["account_id"] for e in brand["tagged_by"]}
        assert partners and partners < tagged_by  # its known partners tagged it, and so did other creators
        creator = httpx.get(url + f"v1/accounts/{min(partners)}", timeout=60).json()
        assert {(e["handle"], e["target_id"]) for e in creator["worked_with"] if e["kind"] == "tag"} >= {
            ("peakfit", "brand_peakfit")
        }
        # two earlier months of follower counts, then the corpus's own: a growth of 0.5-4 % a month
        history = creator["follower_history"]
        assert [h["source"] for h in history] == ["given", "given", "ingest"]
        assert history[0]["followers"] < history[1]["followers"] < history[2]["followers"] == creator["followers"]
        assert 0.004 <= creator["metrics"]["growth_monthly"] <= 0.045  # 30.44-day months of 30-day steps
        scored = httpx.post(
            url + "v1/score",
            files=[("images", (f"{c}.png", _png(c), "image/png")) for c in ("white", "black")],
            timeout=60,
        )
        assert scored.status_code == 200 and scored.json()["count"] == 2  # the engagement model was trained

    # a second run finds the corpus, the store and both models, and redoes none of them
    again = subprocess.run(
        [sys.executable, "-m", "congruence", "demo", "--no-serve", "-k", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "building" not in again.stderr and "training" not in again.stderr
    assert "posts: 0 new, 0 updated" in again.stdout and "encoded: 0 images, 0 captions" in again.stdout
    assert "best-matching influencers for brand_peakfit" in again.stdout
    assert "learned fusion)" in again.stderr  # the ranking line under the matches

    # an engagement checkpoint of an older format (a home from before its inputs changed) is
    # replaced by the next demo, not served as a 409 on the score page
    with Store.open(env) as store:
        version = store.meta()[ENGAGEMENT_KEY]
    torch.save({"format": "congruence-engagement/1"}, checkpoint_path(env, version))
    third = subprocess.run(
        [sys.executable, "-m", "congruence", "demo", "--no-serve", "-k", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert third.returncode == 0, third.stderr[-2000:]
    assert "older format" in third.stderr and "training the engagement model" in third.stderr
    assert "training the congruence head" not in third.stderr  # the head in service still works
    with Store.open(env) as store:
        assert load_active(env, store).version != version
