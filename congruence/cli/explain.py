"""`congruence explain`: heatmaps of what in an image made it match a brand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from congruence.cli.parser import Subcommands
from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings


def _write(exp, image, out: str | None, raw: str | None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from congruence.search.heatmap import overlay

    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        overlay(image, exp.heatmap).save(out)
    if raw:
        Path(raw).parent.mkdir(parents=True, exist_ok=True)
        np.save(raw, exp.heatmap.astype(np.float32))
    return {
        "brand_id": exp.brand_id,
        "post_id": exp.post_id,
        "image_hash": exp.image_hash,
        "score": exp.score,
        "method": exp.method,
        "model": exp.model,
        "cached": exp.cached,
        "out": out,
        "raw": raw,
        "height": int(exp.heatmap.shape[0]),
        "width": int(exp.heatmap.shape[1]),
    }


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.engine import open_engine
    from congruence.encoders.images import read_image
    from congruence.search.explain import Explainer

    chosen = [a for a in ("post", "image", "influencer") if getattr(args, a)]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --post ID, --image FILE or --influencer ID")
    if chosen[0] == "influencer" and not args.out_dir:
        raise InvalidInput("--influencer needs --out-dir DIR for her posts' heatmaps")
    if chosen[0] != "influencer" and not (args.out or args.raw):
        raise InvalidInput("give --out FILE.png (overlay) and/or --raw FILE.npy (float32 map)")
    with open_engine(settings) as engine:
        explainer = Explainer(engine)
        if args.post:
            exp, image = explainer.explain_post(args.brand, args.post, args.method)
            results = [_write(exp, image, args.out, args.raw)]
        elif args.image:
            path = Path(args.image)
            if not path.is_file():
                raise InvalidInput(f"image not found: {path}")
            image, digest = read_image(path)
            exp = explainer.explain_image(args.brand, image, digest, args.caption or "", args.method)
            results = [_write(exp, image, args.out, args.raw)]
        else:
            out_dir = Path(args.out_dir)
            results = []
            for post_id, _ in explainer.top_posts(args.brand, args.influencer, args.top):
                exp, image = explainer.explain_post(args.brand, post_id, args.method)
                stem = post_id.replace("/", "_")
                results.append(_write(exp, image, str(out_dir / f"{stem}.png"), str(out_dir / f"{stem}.npy")))
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "index.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        sys.stdout.write(json.dumps({"data": results, "count": len(results)}) + "\n")
    else:
        for r in results:
            where = ", ".join(str(p) for p in (r["out"], r["raw"]) if p)
            print(
                f"{r['post_id'] or args.image}: score {r['score']:.3f} ({r['method']}"
                f"{', cached' if r['cached'] else ''}) -> {where}"
            )
    return 0


def add_parser(sub: Subcommands) -> None:
    from congruence.search.attribution import METHODS

    p = sub.add_parser("explain", help="heatmap of what in an image makes it match a brand")
    p.add_argument("--brand", required=True, help="id of a brand in the corpus")
    p.add_argument("--post", help="explain this post's image")
    p.add_argument("--image", help="explain an image file")
    p.add_argument("--caption", help="caption of --image (default none)")
    p.add_argument("--influencer", help="explain this influencer's best-matching posts (needs --out-dir)")
    p.add_argument("--top", type=int, default=3, help="how many of her posts (default 3)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="gradcam",
        help="gradcam (default, fast), integrated_gradients or occlusion (slower, finer)",
    )
    p.add_argument("--out", help="overlay PNG")
    p.add_argument("--raw", help="float32 .npy map with the image's height and width")
    p.add_argument("--out-dir", help="folder for --influencer: POST.png, POST.npy, index.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)
