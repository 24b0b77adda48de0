"""``vitfeat extract``: run the model on images and describe (or save) exactly what the Python API returns."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vitfeat_desktop.commands import add_model_options
from vitfeat_desktop.core.errors import ImageReadError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "extract",
        help="extract features from images",
        description="Run the image-feature-extraction pipeline and print the output's shape and statistics.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or http(s) URLs")
    add_model_options(parser)
    parser.add_argument("--pool", action="store_true", help="return pooler_output [N, hidden] instead of "
                        "last_hidden_state [N, tokens, hidden]")
    parser.add_argument("--out", metavar="FILE.npy", type=Path, help="save the array the Python API returns")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def summarize(array: np.ndarray, output: str) -> dict[str, Any]:
    """Shape, dtype and statistics of an output; for hidden states also the token layout."""
    info: dict[str, Any] = {
        "output": output,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "min": float(array.min()),
        "max": float(array.max()),
        "mean": float(array.mean()),
        "std": float(array.std()),
    }
    if output == "last_hidden_state" and array.ndim == 3:
        tokens = array.shape[1]
        info["tokens"] = tokens
        info["patch_tokens"] = tokens - 1
        grid = round((tokens - 1) ** 0.5)
        if grid * grid == tokens - 1:
            info["patch_grid"] = [grid, grid]
        info["cls_token_norm"] = [float(n) for n in np.linalg.norm(array[:, 0, :], axis=-1)]
    else:
        info["norm"] = [float(n) for n in np.linalg.norm(array.reshape(array.shape[0], -1), axis=-1)]
    return info


def run(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.pipeline import pipeline

    for item in args.images:
        if not item.startswith(("http://", "https://")) and not Path(item).is_file():
            raise ImageReadError(item, "file not found")
    extractor = pipeline("image-feature-extraction", model=args.model, quantized=not args.fp32)
    features = extractor(list(args.images), pool=args.pool)
    output = "pooler_output" if args.pool else "last_hidden_state"
    info = {"model": extractor.model_id, "variant": extractor.variant, **summarize(features, output),
            "images": list(args.images)}
    if args.out:
        out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(args.out.suffix + ".npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, features)
        info["saved"] = str(out)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"model:   {info['model']} ({info['variant']})")
    print(f"output:  {output} {tuple(features.shape)} {features.dtype}")
    print(f"stats:   min {info['min']:.4f}  max {info['max']:.4f}  mean {info['mean']:.4f}  std {info['std']:.4f}")
    if "tokens" in info:
        grid = "x".join(map(str, info.get("patch_grid", []))) or "?"
        norms = ", ".join(f"{n:.3f}" for n in info["cls_token_norm"])
        print(f"tokens:  {info['tokens']} (1 CLS + {info['patch_tokens']} patches, grid {grid}); CLS norm {norms}")
    else:
        print("norms:   " + ", ".join(f"{n:.3f}" for n in info["norm"]))
    if "saved" in info:
        print(f"saved:   {info['saved']}")
    return 0
