"""``vitfeat-desktop --self-test``: prove that an installed bundle works on this machine, one line per check.

Why it exists: a frozen bundle fails in ways the test-suite never sees. PyInstaller can leave out a Qt platform
plugin, an onnxruntime shared library, Pillow's AVIF codec or libheif, and the app then dies on a user's machine
at the first photo of that kind. The release workflow runs this on every OS runner against the *installed*
bundle, so each native part is loaded and exercised for real: codecs encode and decode a generated picture,
ONNX Runtime runs a (tiny, generated, or given) ViT, a library is scanned and queried in a throw-away data dir,
and the main window is opened and closed offscreen.

Nothing here touches the user's data: ``VITFEAT_HOME`` points at a temporary folder for the whole run and the
previous environment is restored afterwards, so the function is also safe to call in-process from tests.

Output: ``ok   name: detail`` / ``FAIL name: reason`` / ``skip name: reason`` per check, then a summary line.
Exit status 0 when no check failed, 1 otherwise (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vitfeat_desktop.core.errors import one_line
from vitfeat_desktop.selftest import checks
from vitfeat_desktop.selftest.context import CheckFailed, CheckSkipped, Context
from vitfeat_desktop.selftest.window import check_window, startup_probe


@dataclass
class Result:
    name: str
    status: str  # "ok" | "FAIL" | "skip"
    detail: str
    seconds: float

    def line(self) -> str:
        label = {"ok": "ok  ", "FAIL": "FAIL", "skip": "skip"}[self.status]
        return f"{label} {self.name}: {self.detail} ({self.seconds:.2f} s)"


CHECKS: tuple[tuple[str, Callable[[Context], str]], ...] = (
    ("python", checks.check_python),
    ("onnxruntime", checks.check_onnxruntime),
    ("onnx", checks.check_onnx),
    ("hnswlib", checks.check_hnswlib),
    ("opencv", checks.check_opencv),
    ("pillow", checks.check_pillow),
    ("heic", checks.check_heic),
    ("raw", checks.check_raw),
    ("tls", checks.check_tls),
    ("qt", checks.check_qt),
    ("model", checks.check_model),
    ("library", checks.check_library),
    ("window", check_window),
)


class _Collect(logging.Handler):
    """Keeps the app's log warnings for the checks to judge (and off the one-line-per-check output)."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.sink.append(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def _collect_warnings(sink: list[str]) -> Iterator[None]:
    logger = logging.getLogger("vitfeat_desktop")
    handler = _Collect(sink)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def _isolated_env(home: Path, platform_name: str | None) -> Iterator[None]:
    """Point the app at a throw-away data dir (and Qt at a platform) for the run; restore afterwards."""
    saved = {k: os.environ.get(k) for k in ("VITFEAT_HOME", "QT_QPA_PLATFORM", "VITFEAT_OFFLINE")}
    os.environ["VITFEAT_HOME"] = str(home)
    os.environ["VITFEAT_OFFLINE"] = "1"  # the self-test must never reach for the network
    if platform_name:
        os.environ["QT_QPA_PLATFORM"] = platform_name
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_checks(
    *,
    model: str | None = None,
    quantized: bool = True,
    only: set[str] | None = None,
    platform_name: str | None = "offscreen",
    verbose: bool = False,
    out: TextIO | None = None,
) -> list[Result]:
    """Run the checks (all, or those named in ``only``), print one line each to ``out``, return the results."""
    out = out or sys.stdout
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vitfeat-selftest-") as tmp:
        workdir = Path(tmp)
        ctx = Context(workdir=workdir, model_arg=model, quantized=quantized, photos_dir=workdir / "photos")
        with _isolated_env(workdir / "home", platform_name), _collect_warnings(ctx.warnings):
            for name, check in CHECKS:
                if only and name not in only:
                    continue
                start = time.perf_counter()
                try:
                    detail = check(ctx)
                    status = "ok"
                except CheckSkipped as exc:
                    status, detail = "skip", str(exc)
                except CheckFailed as exc:
                    status, detail = "FAIL", str(exc)
                except Exception as exc:  # any crash in a check is that check's failure, the others still run
                    status, detail = "FAIL", one_line(exc, name_type=True)
                    if verbose:
                        traceback.print_exc(file=out)
                result = Result(name, status, detail, time.perf_counter() - start)
                results.append(result)
                print(result.line(), file=out, flush=True)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitfeat-desktop --self-test",
        description="Check that this installation of vitfeat-desktop works: every native part, a model, a "
                    "scan, a query and the main window. Uses a temporary data folder; changes nothing.",
    )
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="a model folder to test with (default: generate a tiny ViT)")
    parser.add_argument("--fp32", action="store_true", help="test onnx/model.onnx instead of the int8 model")
    parser.add_argument("--only", metavar="NAMES", default=None,
                        help=f"comma-separated checks to run ({', '.join(n for n, _ in CHECKS)})")
    parser.add_argument("--platform", default=None,
                        help="Qt platform plugin (default: offscreen for the checks, the system's for --startup)")
    parser.add_argument("--startup", action="store_true",
                        help="only open the main window on the real platform, quit when shown, print the time")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failed checks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``vitfeat-desktop --self-test [--model PATH]`` (argv excludes ``--self-test`` itself)."""
    args_list = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--self-test"]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    out = sys.stdout if sys.stdout is not None else io.StringIO()  # windowed builds may have no stdout
    if args.startup:
        if args.platform:
            os.environ["QT_QPA_PLATFORM"] = args.platform
        return startup_probe(out)
    only = {n.strip() for n in args.only.split(",")} if args.only else None
    known = {n for n, _ in CHECKS}
    if only and not only <= known:
        print(f"vitfeat-desktop --self-test: unknown check(s): {', '.join(sorted(only - known))}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run_checks(model=args.model, quantized=not args.fp32, only=only,
                         platform_name=args.platform or "offscreen",
                         verbose=args.verbose, out=out)
    failed = [r for r in results if r.status == "FAIL"]
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "FAIL", "skip")}
    print(f"self-test: {counts['ok']} ok, {counts['FAIL']} failed, {counts['skip']} skipped "
          f"in {time.perf_counter() - start:.1f} s", file=out, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
