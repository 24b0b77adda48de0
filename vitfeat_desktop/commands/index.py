"""``vitfeat index FOLDER`` and ``vitfeat similar IMAGE``: the library from the command line.

Progress goes to stderr (a rewritten line on a terminal, a line every few seconds otherwise), results to stdout,
so ``--json`` output can be piped. Paths that are not valid UTF-8 are printed with backslash escapes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypedDict

from vitfeat_desktop.commands import add_model_options
from vitfeat_desktop.core.errors import VitfeatError
from vitfeat_desktop.core.progress import Progress

if TYPE_CHECKING:
    from vitfeat_desktop.core.library.facade import Library


class IndexedModel(TypedDict):
    """A model the library has vectors for (a catalogue ``ModelInfo``), and for how many files."""

    model_key: str
    model_id: str
    variant: str
    pooling: str
    dim: int
    count: int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "index",
        help="index a folder of images (incremental)",
        description="Index every image below FOLDER into the library catalogue and its similarity index. "
        "Re-running only processes new and changed files. Nothing is written inside FOLDER.",
    )
    parser.add_argument("folder", metavar="FOLDER", type=Path)
    add_model_options(parser)
    parser.add_argument("--threads", type=int, metavar="N", default=None,
                        help="threads for inference and for decoding (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="only hash and catalogue files (for duplicates), no model")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    parser.add_argument("--repair", action="store_true",
                        help="start a damaged catalogue afresh (the damaged one is kept aside, stored vectors that "
                        "are still readable are reused), then index; marks and undo history are kept")
    parser.set_defaults(func=run_index)

    similar = sub.add_parser(
        "similar",
        help="find the indexed images most similar to an image",
        description="Print the K indexed images most similar to IMAGE (which need not be indexed), best first.",
    )
    similar.add_argument("image", metavar="IMAGE", type=Path)
    similar.add_argument("--in", dest="folder", metavar="FOLDER", type=Path, default=None,
                         help="the indexed folder to search (default: the indexed folder that contains IMAGE)")
    add_model_options(similar)
    similar.add_argument("-k", type=int, default=10, metavar="K", help="how many results (default 10)")
    similar.add_argument("--json", action="store_true", help='print {"query": ..., "results": [...]}')
    similar.set_defaults(func=run_similar)


def _display(path: str) -> str:
    """A path that can always be printed and put in JSON (undecodable bytes become \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class ProgressLine:
    """Files done/total, images/s and ETA on stderr, at most a few times a second."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._width = 0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < 5.0 and p.done != p.total:
            return
        self._last = now
        if p.phase == "walking":
            text = f"listing files: {p.done} found"
        else:
            total = f"/{p.total}" if p.total is not None else ""
            rate = f"  {p.rate:.1f} img/s" if p.rate else ""
            eta = f"  ETA {_duration(p.eta)}" if p.eta is not None and p.done != p.total else ""
            text = f"{p.phase}: {p.done}{total} files{rate}{eta}"
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def run_index(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.library.facade import Library, repair_library

    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be at least 1")
    if args.repair:
        repaired = repair_library(args.folder)
        print(f"vitfeat: the old catalogue is kept in {_display(str(repaired.set_aside))}; "
              f"{repaired.vectors_kept} stored vectors reused; rebuilding from the photos", file=sys.stderr)
    line = ProgressLine()
    with Library.open(args.folder, model=args.model, quantized=not args.fp32,
                      intra_op_threads=args.threads) as library:
        try:
            report = library.scan(embed=not args.quick, threads=args.threads, progress=line)
        finally:
            line.end()
    data = report.to_json()
    data["folder"] = _display(str(library.folder))
    data["skipped"] = [{"path": _display(s["path"]), "reason": s["reason"]} for s in report.skipped]
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rate = report.indexed / report.seconds if report.seconds > 0 else 0.0
    print(f"indexed {report.indexed}, unchanged {report.unchanged}, reused {report.reused}, "
          f"removed {report.removed}, skipped {len(report.skipped)} in {report.seconds:.1f} s"
          + (f" ({rate:.1f} images/s)" if report.indexed else ""))
    for item in data["skipped"][:20]:
        print(f"  skipped {item['path']}: {item['reason']}")
    if len(report.skipped) > 20:
        print(f"  ... and {len(report.skipped) - 20} more (use --json for the full list)")
    return 0


def find_library_folder(image: Path) -> Path | None:
    """The deepest indexed folder that contains ``image``, from the records in the libraries dir."""
    from vitfeat_desktop import config
    from vitfeat_desktop.core.library.paths import LIBRARY_RECORD

    target = image.expanduser().resolve()
    best: Path | None = None
    root = config.libraries_dir()
    if not root.is_dir():
        return None
    for record in root.glob(f"*/{LIBRARY_RECORD}"):
        try:
            folder = Path(json.loads(record.read_text(encoding="utf-8"))["folder"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (folder == target or folder in target.parents) and (best is None or len(folder.parts) > len(best.parts)):
            best = folder
    return best


def run_similar(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.library.facade import Library
    from vitfeat_desktop.core.library.paths import LibraryPaths

    if args.k < 1:
        raise ValueError("-k must be at least 1")
    image: Path = args.image
    if not image.exists():
        raise VitfeatError(f"image {image} does not exist")
    folder = args.folder or find_library_folder(image)
    if folder is None:
        raise VitfeatError(f"no indexed folder contains {image}; say which one to search with --in FOLDER")
    if not LibraryPaths.of(folder).catalog.exists():
        raise VitfeatError(f"{folder} is not indexed yet; run: vitfeat index {folder}")
    model, quantized = args.model, not args.fp32
    with Library.open(folder, model=model, quantized=quantized) as library:
        models = indexed_models(library)
        mine = next((m for m in models if m["model_key"] == library.model_key), None)
        if mine is None and args.model is None and len(models) == 1:
            model, quantized = models[0]["model_id"], models[0]["variant"] != "fp32"
        elif mine is None:
            if args.model is not None:
                _ = library.extractor.session  # a model that cannot load says so, not "no images indexed with it"
            raise VitfeatError(_no_vectors_message(folder, args.model, library, models))
        else:
            results = library.similar(image, k=args.k)
    if mine is None:  # the one model the library was indexed with (not the configured default)
        print(f"vitfeat: {folder} was indexed with {model} ({'int8' if quantized else 'fp32'}); using it",
              file=sys.stderr)
        with Library.open(folder, model=model, quantized=quantized) as library:
            if not any(m["model_key"] == library.model_key for m in indexed_models(library)):
                raise VitfeatError(f"{folder} was indexed with {model}, whose weights have changed since; "
                                   f"re-index it: vitfeat index {folder} --model {model}")
            results = library.similar(image, k=args.k)
    if args.json:
        out = {"query": _display(str(image)),
               "results": [{"path": _display(r.path), "score": round(r.score, 6)} for r in results]}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in results:
        print(f"{r.score:.4f}  {_display(r.path)}")
    return 0


def indexed_models(library: Library) -> list[IndexedModel]:
    """The models this library has vectors for, with how many files each embedded (most first)."""
    out: list[IndexedModel] = []
    for m in library.catalog.models():
        count = len(library.catalog.has_vector_hashes(m["model_key"]))
        if count:
            out.append(IndexedModel(**m, count=count))
    return sorted(out, key=lambda m: -m["count"])


def _no_vectors_message(folder: Path, asked: str | None, library: Library, models: list[IndexedModel]) -> str:
    """Why `similar` cannot search: no images for this model; which models the library does have."""
    from vitfeat_desktop.core.library.model_key import default_model

    wanted = asked if asked is not None else f"{default_model()} (the configured model)"
    if not models:
        return f"{folder} has no images indexed with any model yet; run: vitfeat index {folder}"
    have = "; ".join(f"{m['model_id']} ({m['variant']}, {m['count']} images)" for m in models)
    return (f"{folder} has no images indexed with {wanted}; it was indexed with: {have}. Choose one with "
            f"--model ID|PATH (and --fp32 for an fp32 index), or index it with this model: vitfeat index {folder}"
            + (f" --model {asked}" if asked is not None else ""))
