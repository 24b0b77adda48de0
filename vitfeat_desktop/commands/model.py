"""``vitfeat model``: download, list, import, remove and locate models in the local cache."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any

from vitfeat_desktop import config
from vitfeat_desktop.core.progress import Progress

EXIT_OK = 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("model", help="download, import, list and remove models",
                                   description="Manage the local model cache (downloads from the Hugging Face hub "
                                   "or imports for offline machines).")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    p = sub.add_parser("download", help="fetch a model from the hub into the cache",
                       description="Fetch config.json, preprocessor_config.json and the ONNX model (int8 by default) "
                       "from {HF_ENDPOINT or https://huggingface.co}. Resumes interrupted downloads; HF_TOKEN is sent "
                       "for gated or private models.")
    p.add_argument("model_id", nargs="?", metavar="ID", default=None,
                   help=f"hub id (default: {config.DEFAULT_MODEL_ID})")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp32", action="store_true", help="fetch the full-precision onnx/model.onnx instead")
    group.add_argument("--all", action="store_true", help="fetch both the int8 and the fp32 model")
    p.add_argument("--revision", metavar="REV", default=None,
                   help="branch, tag or commit (default: the commit already cached, else main)")
    p.add_argument("--force", action="store_true", help="fetch again even if the files are cached")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("list", help="show cached models (and, with --known, the models vitfeat knows)")
    p.add_argument("--known", action="store_true", help="also list the known-good models you can download")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("import", help="add a model from a folder or an .onnx file (for offline machines)",
                       description="Copy a hub-layout folder (config.json, preprocessor_config.json, onnx/*.onnx), "
                       "a copied cache folder, or a single .onnx file plus its preprocessor_config.json into the "
                       "cache, after checking with ONNX Runtime that it is an image encoder vitfeat can run.")
    p.add_argument("path", metavar="PATH", help="model folder or .onnx file")
    p.add_argument("--id", dest="model_id", metavar="NAME", default=None,
                   help="id to store it under (default: from the folder name, e.g. local/NAME)")
    p.add_argument("--variant", choices=("int8", "fp32"), default=None,
                   help="for a single .onnx file: which variant it is (default: guessed from the name)")
    p.add_argument("--config", dest="config_file", metavar="FILE", default=None, help="config.json to use")
    p.add_argument("--preprocessor", dest="preprocessor_file", metavar="FILE", default=None,
                   help="preprocessor_config.json to use")
    p.add_argument("--force", action="store_true", help="replace a model cached under the same id")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("remove", help="delete a model from the cache")
    p.add_argument("model_id", metavar="ID")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("path", help="print the cache folder of a model (or of all models)")
    p.add_argument("model_id", nargs="?", metavar="ID", default=None,
                   help="hub id; without it, the folder that holds all models")
    p.set_defaults(func=cmd_path)


# -- progress display ---------------------------------------------------------------------------------------------

def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _fmt_eta(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressPrinter:
    """Turns the download's :class:`Progress` reports into a redrawn bar on a terminal and sparse plain lines
    otherwise.

    Plain lines (a pipe, a log file, CI) get one line per file and one per 10%, so a log stays readable; the bar
    shows bytes, percentage, speed and ETA and is redrawn on every report (the download's ``Reporter`` already
    sends at most 10 a second, so there is no second throttle here). The speed is measured here,
    from the first report this printer saw, not taken from ``Progress.rate``: a resumed download starts at the
    bytes already on disk, which were not transferred now.
    """

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.width = width
        self._start: float | None = None
        self._start_done = 0
        self._last_decile = -1
        self._last_message = ""
        self._drawn = False

    def __call__(self, report: Progress) -> None:
        done, total, message = report.done, report.total, report.message
        now = time.monotonic()
        if self._start is None:
            self._start, self._start_done = now, done
        elapsed = now - self._start
        speed = (done - self._start_done) / elapsed if elapsed > 0.2 else None
        eta = (total - done) / speed if speed and total is not None and speed > 0 else None
        if self.tty:
            if total:
                frac = min(1.0, done / total)
                filled = int(frac * self.width)
                bar = "#" * filled + "-" * (self.width - filled)
                text = f"[{bar}] {frac * 100:5.1f}% {_fmt_bytes(done)}/{_fmt_bytes(total)}"
            else:
                text = _fmt_bytes(done)
            if speed:
                text += f" {_fmt_bytes(speed)}/s"
            if eta is not None:
                text += f" ETA {_fmt_eta(eta)}"
            self.stream.write(f"\r\x1b[2K{text}  {message}")
            self.stream.flush()
            self._drawn = True
            return
        base = message.removesuffix(" done")
        decile = int(10 * done / total) if total else -1
        if base != self._last_message or decile > self._last_decile:
            self._last_message = base
            self._last_decile = decile
            pct = f" {100 * done / total:.0f}%" if total else ""
            rate = f" {_fmt_bytes(speed)}/s" if speed else ""
            total_text = f"/{_fmt_bytes(total)}" if total else ""
            self.stream.write(f"{message}: {_fmt_bytes(done)}{total_text}{pct}{rate}\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# -- commands -----------------------------------------------------------------------------------------------------

def cmd_download(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.models.download import download_model

    model_id = args.model_id or config.DEFAULT_MODEL_ID
    variants = ("int8", "fp32") if args.all else (("fp32",) if args.fp32 else ("int8",))
    printer = ProgressPrinter()
    try:
        result = download_model(model_id, variants=variants, revision=args.revision, force=args.force,
                                progress=printer)
    finally:
        printer.finish()
    if result.already_cached:
        print(f"{model_id} is already cached in {result.folder}")
    else:
        commit = f" at commit {result.commit[:12]}" if result.commit else ""
        print(f"downloaded {model_id}{commit} ({_fmt_bytes(result.bytes_fetched)}) to {result.folder}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.models.cache import list_cached_models
    from vitfeat_desktop.core.models.registry import KNOWN_MODELS

    cached = list_cached_models()
    if args.json:
        data: dict[str, Any] = {"models_dir": str(config.models_dir()), "cached": [
            {"id": m.model_id, "variants": list(m.variants), "size_bytes": m.size_bytes, "source": m.source,
             "revision": m.revision, "commit": m.commit, "imported_from": m.imported_from,
             "partial": m.partial, "path": str(m.folder)} for m in cached]}
        if args.known:
            data["known"] = [
                {"id": k.model_id, "name": k.display_name, "description": k.description,
                 "embedding_dim": k.embedding_dim, "hidden_shape": list(k.hidden_shape),
                 "download_bytes": k.download_bytes, "pooling": k.pooling} for k in KNOWN_MODELS.values()]
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if not cached:
        print(f"no models cached in {config.models_dir()} (fetch one with: vitfeat model download)")
    for m in cached:
        where = m.commit[:12] if m.commit else (m.revision or "-")
        if m.source == "import":
            where = f"imported from {m.imported_from}"
        elif m.revision and m.commit and m.revision != m.commit:
            where = f"{m.revision}@{m.commit[:12]}"
        variants = ",".join(m.variants) or "none"
        partial = "  (incomplete download)" if m.partial else ""
        print(f"{m.model_id:<40} {variants:<10} {_fmt_bytes(m.size_bytes):>9}  {where}  {m.folder}{partial}")
    if args.known:
        print("\nknown models (vitfeat model download ID [--fp32]):")
        cached_ids = {m.model_id for m in cached}
        for k in KNOWN_MODELS.values():
            mark = "*" if k.model_id in cached_ids else " "
            print(f"{mark} {k.model_id:<40} {k.embedding_dim:>4}-d  int8 {k.describe_size('int8')}, "
                  f"fp32 {k.describe_size('fp32')}  {k.display_name}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.models.cache import import_model

    model = import_model(args.path, model_id=args.model_id, variant=args.variant, config_file=args.config_file,
                         preprocessor_file=args.preprocessor_file, force=args.force)
    print(f"imported {model.model_id} ({','.join(model.variants)}) into {model.folder}")
    print(f"use it with: --model {model.model_id}" + ("" if "int8" in model.variants else " --fp32"))
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.models.cache import remove_model

    folder = remove_model(args.model_id)
    print(f"removed {args.model_id} ({folder})")
    return EXIT_OK


def cmd_path(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.errors import ModelNotCachedError
    from vitfeat_desktop.core.models.layout import cache_folder

    if args.model_id is None:
        print(config.models_dir())
        return EXIT_OK
    folder = cache_folder(args.model_id)
    if not folder.is_dir():
        raise ModelNotCachedError(f"model {args.model_id} is not cached (it would live in {folder}); "
                                  f"fetch it with: vitfeat model download {args.model_id}")
    print(folder)
    return EXIT_OK
