"""The CLI through main(argv), against the real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from congruence.core.settings import Settings

from .conftest import run


def test_ingest_match_similar_status_as_json(
    env: Settings, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ingest", str(small_corpus), "--json")
    assert code == 0 and json.loads(out)["posts_new"] == 48
    code, out, _ = run(capsys, "match", "--brand", "brand_happy_paws", "-k", "3", "--json")
    body = json.loads(out)
    assert code == 0 and body["count"] == 3 and len(body["data"]) == 3
    assert {"influencer_id", "score", "rank"} <= set(body["data"][0])
    assert [h["rank"] for h in body["data"]] == [1, 2, 3]
    assert body["data"][0]["score"] >= body["data"][1]["score"] >= body["data"][2]["score"]
    code, out, _ = run(capsys, "similar", "--influencer", "tech_creator_00", "-k", "4", "--category", "TECH", "--json")
    body = json.loads(out)
    assert code == 0 and body["count"] == 2 and {h["category"] for h in body["data"]} == {"tech"}
    code, out, _ = run(capsys, "match", "--brand", "brand_happy_paws", "--micro", "-k", "50", "--json")
    fol = [h["followers"] for h in json.loads(out)["data"]]
    assert fol and all(5_000 <= f <= 100_000 for f in fol)
    code, out, _ = run(capsys, "status", "--json")
    st = json.loads(out)
    assert st["accounts"] == {"brand": 6, "influencer": 18} and st["posts"] == 48 and st["embedded_posts"] == 48
    assert st["index"]["size"] == 18 and st["index"]["stale"] is False and st["index"]["model"]


def test_match_for_a_brand_not_in_the_corpus(
    env: Settings, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", str(small_corpus), "--json")
    img = str(small_corpus / "images" / "brand_nonna_kitchen_p0.jpg")
    code, out, _ = run(capsys, "match", "--images", img, "--text", "pasta recipe brunch", "-k", "2", "--json")
    assert code == 0 and [h["category"] for h in json.loads(out)["data"]] == ["food", "food"]


def test_errors_are_sentences_with_exit_codes(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ingest", str(tmp_path / "nowhere"))
    assert code == 1 and err.strip() == f"error: corpus folder not found: {tmp_path / 'nowhere'}"
    run(capsys, "ingest", str(small_corpus), "--json")
    code, _, err = run(capsys, "match", "--brand", "nike")
    assert code == 1 and err.strip() == "error: unknown brand 'nike'"
    code, _, err = run(capsys, "match", "--brand", "fitness_creator_00")
    assert code == 1 and err.strip() == "error: 'fitness_creator_00' is an influencer, not a brand"
    code, _, err = run(capsys, "match", "--brand", "brand_peakfit", "--min-followers", "9", "--max-followers", "1")
    assert code == 1 and err.strip() == "error: --min-followers (9) is greater than the maximum follower count (1)"
    code, _, err = run(
        capsys, "match", "--brand", "brand_peakfit", "--like", "fitness_creator_00", "--like-weight", "11"
    )
    assert code == 1 and err.strip() == "error: --like-weight must be a number from 0 to 10, got 11.0"
    code, _, err = run(capsys, "match", "--brand", "brand_peakfit", "-k", "0")  # a library check, spelt as typed
    assert code == 1 and err.strip() == "error: -k must be a whole number from 1 to 1000, got 0"
    names = tmp_path / "names.txt"
    names.write_text("brand_peakfit\nno_such_brand\n")
    code, _, err = run(capsys, "train", "--hard-negatives", "2")  # an option named otherwise than its field
    assert code == 1 and err.strip() == "error: --hard-negatives must be from 0 to 1, got 2.0"
    code, _, err = run(capsys, "train", "--test-brands", str(names))
    assert code == 1 and err.strip() == "error: --test-brands names unknown brand ids: no_such_brand", err
    empty = tmp_path / "test_brands.txt"  # an option's name inside a path stays as it is
    empty.write_text("")
    code, _, err = run(capsys, "train", "--test-brands", str(empty))
    assert code == 1 and err.strip() == f"error: {empty}: no brand ids (expected one a line)", err
    bad = tmp_path / "bad"
    shutil.copytree(small_corpus, bad)
    with (bad / "posts.jsonl").open("a") as f:
        f.write('{"id": "p_evil", "account_id": "brand_peakfit", "image": "../../etc/passwd", "caption": "x"}\n')
    code, out, _ = run(capsys, "ingest", str(bad), "--json")
    rejected = json.loads(out)["rejected"]
    assert code == 2 and rejected == [
        {"file": "posts.jsonl", "line": 49, "reason": "image path escapes the corpus folder: '../../etc/passwd'"}
    ]


def test_what_users_got_wrong_is_named(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", str(small_corpus), "--json")
    code, _, err = run(capsys, "match", "--brand", "brand_peakfit", "--category", "fitnes")
    assert code == 1 and err.startswith("error: no influencer has the category 'fitnes'; the categories are: ")
    assert "fitness" in err
    code, out, _ = run(capsys, "match", "--brand", "brand_peakfit", "--category", "fitness", "--quiet", "--json")
    assert code == 0 and {h["category"] for h in json.loads(out)["data"]} == {"fitness"}  # --quiet after it
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "evaluate", "--model", str(bad))
    assert code == 1 and err.strip().startswith(f"error: {bad}: not a checkpoint torch can read"), err
    code, out, err = run(capsys, "delete", "fitness_creator_00", "ghost", "--json")
    assert code == 1 and json.loads(out) == {"deleted": 1, "not_found": ["ghost"]}
    assert err.strip() == "error: no such account: 'ghost'"
    code, out, _ = run(capsys, "delete", "ghost", "--missing-ok")
    assert code == 0 and out.strip() == "deleted 0 accounts"


def test_a_closed_pipe_ends_quietly(env: Settings, small_corpus: Path) -> None:
    """`congruence ... | head -1`, and a reader gone before anything is written (stdout block-
    buffered, as it is outside this project's environment): no BrokenPipeError, exit 141."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = f"{sys.executable} -m congruence"
    script = (
        f"{cmd} ingest {small_corpus} --json >/dev/null && "
        f"{cmd} similar --influencer fitness_creator_00 -k 12 | head -1 && "
        f'{{ {cmd} similar --influencer fitness_creator_00 -k 12 | true; echo "status ${{PIPESTATUS[0]}}"; }}'
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300, check=False, env=environ)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[-1] == "status 141", (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "ignored" not in proc.stderr, (
        proc.stderr
    )


def test_unreachable_database_exits_1_without_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@127.0.0.1:9/db")
    code, _, err = run(capsys, "status")
    assert code == 1 and err.startswith("error: cannot reach the database at postgresql://u:***@127.0.0.1:9/db")
    assert "Traceback" not in err and ":pw@" not in err
