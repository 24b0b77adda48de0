"""Screenshots of every view of the real app, for the README and for looking at the UI before a release.

Runs the real main window under Xvfb (it re-launches itself with ``xvfb-run`` when no display is set) with the
real DINOv2 model from ``../shared/models`` on a *copy* of ``../shared/data/photos`` (plus an exact copy, a resized
re-save, a crop and a turned copy of a few photos, so the Duplicates and Compare views have something to show,
and one broken file for the "skipped" link), and saves PNGs into ``docs/screenshots/`` at 1280x800, the
duplicates, compare and first-seconds views also at 1920x1080. With an X display (``DISPLAY``, e.g. an
``Xvfb :42 -screen 0 1920x1080x24``) each shot is the real X window read back with ImageMagick's
``import -window ID``; without ``import``, Qt's own ``grab()``.

    DISPLAY=:42 QT_QPA_PLATFORM=xcb .venv/bin/python tests/bench/screenshots.py [--out docs/screenshots] [--photos N]

Debian packages it needs: xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-cursor0
libxkbcommon-x11-0 libxcb-xinerama0 libxcb-shape0 libegl1 libgl1 fonts-dejavu-core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "dinov2-small-imgfocus"
PHOTOS = SHARED / "data" / "photos"


def relaunch_under_xvfb() -> int:
    if shutil.which("xvfb-run") is None:
        print("screenshots: no DISPLAY and no xvfb-run; install the Debian package xvfb", file=sys.stderr)
        return 2
    env = dict(os.environ, VITFEAT_SCREENSHOT_CHILD="1", QT_QPA_PLATFORM="xcb")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", sys.executable, *sys.argv]
    return subprocess.call(cmd, env=env)


def prepare_photos(target: Path, limit: int) -> Path:
    """A copy of the shared photos with a few duplicates made from them (the shared folder stays untouched)."""
    from PIL import Image

    folder = target / "Photos"
    folder.mkdir(parents=True)
    sources = sorted(PHOTOS.glob("*.JPEG"))[:limit]
    for src in sources:
        shutil.copy(src, folder / src.name)
    edits = folder / "edits"
    edits.mkdir()
    for n, src in enumerate(sources[5:45:8]):
        shutil.copy(src, edits / f"{src.stem}_copy.jpg")
        with Image.open(src) as im:
            rgb = im.convert("RGB")
            rgb.resize((rgb.width // 2, rgb.height // 2)).save(edits / f"{src.stem}_small.jpg", quality=80)
            if n % 2 == 0:
                w, h = rgb.size
                rgb.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(edits / f"{src.stem}_crop.jpg",
                                                                             quality=90)
                rgb.transpose(Image.Transpose.ROTATE_90).save(edits / f"{src.stem}_turned.jpg", quality=90)
    # bursts: two shots of one scene, the camera still, the subject moved and turned a little, the light
    # changed (similar shots, not duplicates)
    from PIL import ImageEnhance

    for src in sources[50:80:10]:
        (folder / src.name).unlink()
        with Image.open(src) as im:
            rgb = im.convert("RGB")
            w, h = rgb.size
            box = (w * 3 // 10, h * 3 // 10, w * 7 // 10, h * 7 // 10)
            subject = rgb.crop(box).rotate(8, resample=Image.Resampling.BICUBIC)
            moved = rgb.copy()
            moved.paste(subject, (box[0] + w // 12, box[1] - h // 20))
            rgb.save(edits / f"{src.stem}_burst1.jpg", quality=90)
            ImageEnhance.Brightness(moved).enhance(1.08).save(edits / f"{src.stem}_burst2.jpg", quality=90)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def prepare_scenes(target: Path) -> Path:
    """The shared real scenes (walk-around frames of two scenes, one church by several photographers: every
    frame its own capture) plus a web export, a crop and a black-and-white copy of three frames."""
    from PIL import Image, ImageOps

    folder = target / "Scenes"
    scenes = SHARED / "data" / "scenes"
    shutil.copytree(scenes, folder)
    exports = folder / "exports"
    exports.mkdir()
    for frame in (scenes / "fountain" / "0004.jpg", scenes / "entry" / "0002.jpg", scenes / "fountain" / "0008.jpg"):
        with Image.open(frame) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        name = f"{frame.parent.name}-{frame.stem}"
        rgb.resize((w // 3, h // 3), Image.Resampling.LANCZOS).save(exports / f"{name}_web.jpg", quality=82)
        rgb.crop((w // 8, h // 8, w - w // 8, h - h // 8)).save(exports / f"{name}_crop.jpg", quality=90)
        ImageOps.grayscale(rgb).resize((w // 2, h // 2)).save(exports / f"{name}_bw.jpg", quality=88)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--only", choices=("all", "compare", "scenes"), default="all",
                        help="compare: only the Compare shots (no indexing; a minute instead of ten); scenes: the "
                        "duplicates and similar-shots views on the shared real scenes plus a few exports")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        return relaunch_under_xvfb()
    if not (MODEL / "onnx" / "model_quantized.onnx").is_file():
        print(f"screenshots: the real model is missing: {MODEL}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vitfeat-shots-"))
    os.environ["VITFEAT_HOME"] = str(work / "home")
    folder = prepare_scenes(work) if args.only == "scenes" else prepare_photos(work, args.photos)

    from vitfeat_desktop.gui.app import build_window, ensure_application

    app = ensure_application()
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(work / "qsettings"))

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond: object, timeout: float = 300.0, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            app.processEvents()
            if cond():  # type: ignore[operator]
                return
            time.sleep(0.02)
        raise SystemExit(f"screenshots: timed out waiting for {what}")

    def settle_thumbs(window: object) -> None:
        pump(0.3)
        wait(lambda: window.loader.pending_count() == 0, 120, "thumbnails")  # type: ignore[attr-defined]
        pump(0.3)

    def shot(widget: object, name: str) -> None:
        """The real X window as the X server has it (ImageMagick's import), else Qt's rendering of it."""
        path = out / name
        app.processEvents()
        if os.environ.get("DISPLAY") and shutil.which("import") and app.platformName() == "xcb":
            time.sleep(0.2)
            subprocess.run(["import", "-window", str(int(widget.winId())), str(path)],  # type: ignore[attr-defined]
                           check=True, timeout=60)
        else:
            widget.grab().save(str(path))  # type: ignore[attr-defined]
        print(f"saved {path}")

    sizes = ((1280, 800, ""), (1920, 1080, "-1920x1080"))

    def shots(window: object, name: str) -> None:
        """The window at 1280x800 and at 1920x1080 (name.png and name-1920x1080.png)."""
        for w, h, suffix in sizes:
            window.resize(w, h)  # type: ignore[attr-defined]
            pump(0.6)
            settle_thumbs(window)
            shot(window, f"{name}{suffix}.png")
        window.resize(1280, 800)  # type: ignore[attr-defined]
        pump(0.3)

    def compare_shots(window: object) -> None:
        """An original, its half-size re-save, a crop and a turned copy, lined up on the original."""
        turned = sorted((folder / "edits").glob("*_turned.jpg"))[0]
        stem = turned.stem[: -len("_turned")]
        originals = list(folder.glob(f"{stem}.*"))
        panes = [originals[0], folder / "edits" / f"{stem}_small.jpg", folder / "edits" / f"{stem}_crop.jpg",
                 turned]
        window.compare(panes)  # type: ignore[attr-defined]
        cmp = window.compare_panel  # type: ignore[attr-defined]
        wait(lambda: all(img is not None for img in cmp.images) and all(a is not None for a in cmp.alignments[1:]),
             120, "compare panes and alignments")
        shots(window, "05-compare")
        for w, h, suffix in sizes:  # zoomed in on the middle: the same detail at the same size in every pane
            window.resize(w, h)  # type: ignore[attr-defined]
            pump(0.6)
            cmp.fit_all()
            view = cmp.views[0]
            view.set_scale(view.scale_factor() * 3)
            cmp._follow(view)
            pump(0.5)
            shot(window, f"05-compare-zoomed{suffix}.png")
        cmp.mode.setCurrentIndex(cmp.mode.findData("difference"))
        window.resize(1280, 800)  # type: ignore[attr-defined]
        pump(0.5)
        cmp.fit_all()
        pump(0.3)
        shot(window, "05-compare-difference.png")
        cmp.mode.setCurrentIndex(0)

    if args.only == "scenes":
        window = build_window(folder=folder, model=str(MODEL))
        window.resize(1280, 800)
        window.show()
        finished: list[object] = []
        window.scan_finished.connect(finished.append)
        wait(lambda: bool(finished), 900, "indexing the scenes")
        window.show_duplicates()
        panel = window.dupes_panel
        wait(lambda: panel.stage == "verified" and not window.runner.is_running("dupes-build")
             and not window.runner.is_running("dupes-regroup"), 1200, "the verified duplicate groups")
        shots(window, "11-scenes-duplicates")
        panel.mode.setCurrentIndex(1)
        settle_thumbs(window)
        shots(window, "12-scenes-similar-shots")
        window.close()
        shutil.rmtree(work, ignore_errors=True)
        return 0

    if args.only == "compare":
        window = build_window(folder=None, model=str(MODEL))
        window.resize(1280, 800)
        window.show()
        wait(lambda: window.extractor is not None, 120, "the model")
        compare_shots(window)
        window.close()
        shutil.rmtree(work, ignore_errors=True)
        return 0

    # first run: no model in the cache -> the download/import panel
    first = build_window(folder=None, model=None)
    first.resize(1280, 800)
    first.show()
    wait(lambda: first.library_stack.currentWidget() is first.setup_panel, 60, "the model panel")
    pump(0.3)
    shot(first, "07-first-run.png")
    first.close()

    window = build_window(folder=folder, model=str(MODEL))
    window.resize(1280, 800)
    window.show()
    done: list[object] = []
    window.scan_finished.connect(done.append)
    t0 = time.monotonic()
    wait(lambda: window.progress_bar.isVisible() and window.progress_bar.maximum() > 0, 300, "indexing to start")
    wait(lambda: window.library_model.rowCount() > 40 or bool(done), 300, "the first photos in the grid")
    settle_thumbs(window)
    shot(window, "00-indexing.png")
    wait(lambda: bool(done), 900, "indexing")
    print(f"indexed {window.library_model.rowCount()} photos in {time.monotonic() - t0:.1f} s")
    grid = window.grid
    grid.setCurrentIndex(window.library_model.index(3))
    wait(lambda: window.inspector.current is not None, 60, "the inspector")
    settle_thumbs(window)
    shot(window, "01-library.png")

    # similar: query with a photo that has an edited copy
    query = sorted((folder / "edits").glob("*_crop.jpg"))[0]
    sim: list[object] = []
    window.similar_ready.connect(sim.append)
    window.find_similar(query)
    wait(lambda: bool(sim), 120, "similar results")
    window.similar_panel.grid.setCurrentIndex(window.similar_model.index(1))
    wait(lambda: window.inspector.current is not None and Path(window.inspector.current.path) != query, 60,
         "the inspector on a result")
    settle_thumbs(window)
    shot(window, "02-similar.png")

    # duplicates: the first seconds (hash-level groups while the model's stages run), then the final groups
    t_dupes = time.monotonic()
    window.show_duplicates()
    panel = window.dupes_panel
    wait(lambda: panel.stage is not None and panel.tree.topLevelItemCount() > 0, 120, "the first duplicate groups")
    print(f"first duplicate groups after {time.monotonic() - t_dupes:.1f} s (stage {panel.stage})")
    if panel.stage != "verified":
        shots(window, "10-duplicates-first-seconds")
    wait(lambda: panel.stage == "verified" and not window.runner.is_running("dupes-build")
         and not window.runner.is_running("dupes-regroup"), 900, "the verified duplicate groups")
    print(f"verified duplicate groups after {time.monotonic() - t_dupes:.1f} s")
    panel.auto_select()
    shots(window, "03-duplicates")
    panel.mode.setCurrentIndex(1)
    settle_thumbs(window)
    pump(0.5)
    shot(window, "04-similar-shots.png")
    panel.mode.setCurrentIndex(0)

    compare_shots(window)

    # model manager
    window.show_model_manager()
    dialog = window._model_dialog
    pump(0.5)
    shot(dialog, "06-models.png")
    dialog.close()

    # skipped files
    window.tabs.setCurrentIndex(0)
    window.show_skipped()
    pump(0.3)
    shot(window._skipped_dialog, "08-skipped.png")
    window._skipped_dialog.close()

    # a big screen
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("visual"))
    window.resize(1920, 1080)
    pump(1.0)
    wait(lambda: not window.runner.is_running("order"), 120, "visual ordering")
    settle_thumbs(window)
    shot(window, "09-library-visual-order-1920x1080.png")
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
