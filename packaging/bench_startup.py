"""Cold and warm start of the bundled app to its main window shown, against the source install.

    .venv/bin/python packaging/bench_startup.py [--bundle PATH/TO/vitfeat-desktop] [--runs 5]

Each run starts ``vitfeat-desktop --self-test --startup`` (build the window the way ``run_app`` does, quit when
it is shown) and times the whole process from outside. "cold" first evicts every file of the bundle from the
page cache (``posix_fadvise(DONTNEED)``, per file, no root needed, nothing else on the machine is affected),
the way it is after a reboot or on first launch; system libraries stay cached, so this is a lower bound of a
true cold start. Numbers are printed, never asserted: they depend on the machine and on its load.

``--user-path`` starts the app exactly as a user does (no ``--self-test``: ``run_app`` with
``VITFEAT_QUIT_AFTER_SHOW=1``, which quits once the window is first shown and prints the seconds since the
process started), so the number covers the real start-up code path.

``--xvfb`` runs every start under ``xvfb-run`` with Qt's xcb plugin (a real X server, as on a desktop) instead of
the offscreen plugin; the wall time then includes starting Xvfb, so read the in-process "after process start".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "packaging" / "out" / "dist" / "vitfeat-desktop" / "vitfeat-desktop"


def evict(folder: Path) -> int:
    """Drop ``folder``'s files from the page cache; returns the bytes advised."""
    total = 0
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += path.stat().st_size
        finally:
            os.close(fd)
    return total


QUIT_AFTER_SHOW: dict[str, str] = {}  # {"VITFEAT_QUIT_AFTER_SHOW": "1"} with --user-path


def run_once(command: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="vitfeat-bench-") as home:
        env = dict(os.environ, VITFEAT_HOME=home, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
                   VITFEAT_OFFLINE="1", **QUIT_AFTER_SHOW)
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - start
    line = next((x for x in result.stdout.splitlines() if "startup" in x or "window shown" in x),
                result.stdout.strip()[-200:])
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stdout[-500:]} {result.stderr[-500:]}")
    return elapsed, line


def series(label: str, command: list[str], runs: int, cold_folder: Path | None) -> list[float]:
    times = []
    for i in range(runs):
        if cold_folder is not None:
            evict(cold_folder)
        elapsed, line = run_once(command)
        times.append(elapsed)
        print(f"{label:<14} run {i + 1}: {elapsed:5.2f} s   | {line}", flush=True)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the bundle's vitfeat-desktop executable")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--xvfb", action="store_true", help="use the xcb platform under xvfb-run")
    parser.add_argument("--user-path", action="store_true",
                        help="start the app as a user does (VITFEAT_QUIT_AFTER_SHOW=1) instead of --self-test")
    args = parser.parse_args(argv)
    if not args.bundle.is_file():
        print(f"no bundle at {args.bundle}: run packaging/build_linux.sh first", file=sys.stderr)
        return 2
    folder = args.bundle.resolve().parent
    size = sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"bundle: {folder} ({size / 2**20:.0f} MiB)")
    bundle_cmd = [str(args.bundle), "--self-test", "--startup"]
    source_cmd = [sys.executable, "-m", "vitfeat_desktop", "--self-test", "--startup"]
    if args.user_path:
        QUIT_AFTER_SHOW["VITFEAT_QUIT_AFTER_SHOW"] = "1"
        bundle_cmd, source_cmd = bundle_cmd[:1], source_cmd[:3]
    if args.xvfb:
        wrap = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
        if args.user_path:  # the app's own parser has no --platform: Qt reads the environment
            os.environ["QT_QPA_PLATFORM"] = "xcb"
            bundle_cmd, source_cmd = [*wrap, *bundle_cmd], [*wrap, *source_cmd]
        else:
            bundle_cmd = [*wrap, *bundle_cmd, "--platform", "xcb"]
            source_cmd = [*wrap, *source_cmd, "--platform", "xcb"]
    cold = series("bundle cold", bundle_cmd, args.runs, folder)
    warm = series("bundle warm", bundle_cmd, args.runs, None)
    source = series("source warm", source_cmd, args.runs, None)
    print()
    print(f"{'':<14} {'median':>7} {'min':>6} {'max':>6}")
    for label, times in (("bundle cold", cold), ("bundle warm", warm), ("source warm", source)):
        print(f"{label:<14} {statistics.median(times):6.2f}s {min(times):5.2f}s {max(times):5.2f}s")
    print(f"bundle warm / source warm: {statistics.median(warm) / statistics.median(source):.2f}x; "
          f"cold / warm: {statistics.median(cold) / statistics.median(warm):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
