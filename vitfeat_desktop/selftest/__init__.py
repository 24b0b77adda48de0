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
import platform
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from vitfeat_desktop.core.errors import one_line

# The Qt platform plugin each OS's users need; the bundle must carry it even though we test offscreen.
NATIVE_QT_PLATFORM = {"linux": "xcb", "win32": "windows", "darwin": "cocoa"}

# Pillow formats the app promises to read (HEIC and RAW are separate checks: they use other libraries).
PILLOW_FORMATS = (("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("AVIF", ".avif"), ("TIFF", ".tif"))

# How many generated "photos" the library check indexes (plus one near-duplicate of the first).
N_PHOTOS = 6


class CheckFailed(Exception):
    """A check found a problem; the message is the one-line reason shown to the user."""


class CheckSkipped(Exception):
    """A check cannot run in this build or on this OS; not a failure."""


@dataclass
class Result:
    name: str
    status: str  # "ok" | "FAIL" | "skip"
    detail: str
    seconds: float

    def line(self) -> str:
        label = {"ok": "ok  ", "FAIL": "FAIL", "skip": "skip"}[self.status]
        return f"{label} {self.name}: {self.detail} ({self.seconds:.2f} s)"


@dataclass
class Context:
    """State shared by the checks of one run (later checks use what earlier ones made)."""

    workdir: Path
    model_arg: str | None
    quantized: bool
    photos_dir: Path
    model_folder: Path | None = None
    qt_app: Any = None
    warnings: list[str] = field(default_factory=list)  # the app's log warnings, kept off the check lines


# ---------------------------------------------------------------------------------------------------------
# Generated test pictures
# ---------------------------------------------------------------------------------------------------------
def synthetic_photo(index: int, size: tuple[int, int] = (320, 240)) -> Any:
    """A distinct, photo-like picture (gradient sky, coloured shapes) so decoders and features have content.

    Each index gets different colours and shapes; flat colours would all look alike to a ViT and make the
    query check meaningless.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1000 + index)
    w, h = size
    top = rng.integers(0, 256, 3)
    bottom = rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    grad = (top[None, None, :] * (1 - t) + bottom[None, None, :] * t).repeat(w, axis=1)
    noise = rng.normal(0, 6, (h, w, 3))
    image = Image.fromarray(np.clip(grad + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(3 + index % 4):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image


def write_linear_dng(path: Path, rgb16: np.ndarray) -> None:
    """Write a minimal *linear* DNG (demosaiced RGB, 16 bit) that LibRaw decodes.

    Why hand-written: no library here writes DNG, and a real camera file would add megabytes to the bundle.
    The file has only the tags DNG 1.4 requires for LinearRaw data (identity colour matrix, D65).
    """
    h, w, _ = rgb16.shape
    pixels = np.ascontiguousarray(rgb16.astype("<u2")).tobytes()
    entries: list[tuple[int, int, int, bytes]] = []

    def tag(code: int, kind: int, values: Any) -> None:
        if kind == 2:  # ASCII
            raw = values.encode("ascii") + b"\0"
            count = len(raw)
        elif kind == 10:  # SRATIONAL pairs
            raw = b"".join(struct.pack("<ii", *v) for v in values)
            count = len(values)
        else:
            code_char = {1: "B", 3: "H", 4: "I"}[kind]
            raw = struct.pack(f"<{len(values)}{code_char}", *values)
            count = len(values)
        entries.append((code, kind, count, raw))

    tag(254, 4, [0])  # NewSubfileType: main image
    tag(256, 4, [w])
    tag(257, 4, [h])
    tag(258, 3, [16, 16, 16])
    tag(259, 3, [1])  # no compression
    tag(262, 3, [34892])  # PhotometricInterpretation: LinearRaw
    tag(271, 2, "vitfeat")
    tag(272, 2, "self-test")
    tag(273, 4, [0])  # StripOffsets, patched below
    tag(274, 3, [1])
    tag(277, 3, [3])
    tag(278, 4, [h])
    tag(279, 4, [len(pixels)])
    tag(284, 3, [1])
    tag(50706, 1, [1, 4, 0, 0])  # DNGVersion
    tag(50708, 2, "vitfeat self-test")  # UniqueCameraModel
    tag(50717, 4, [65535])  # WhiteLevel
    tag(50721, 10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)])  # ColorMatrix1
    tag(50778, 3, [21])  # CalibrationIlluminant1: D65
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    extra_start = 8 + ifd_size
    extra = b""
    records = []
    strip_record = -1
    for i, (code, kind, count, raw) in enumerate(entries):
        if code == 273:
            strip_record = i
        if len(raw) <= 4:
            records.append(struct.pack("<HHI", code, kind, count) + raw.ljust(4, b"\0"))
        else:
            records.append(struct.pack("<HHII", code, kind, count, extra_start + len(extra)))
            extra += raw + (b"\0" if len(raw) % 2 else b"")
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(entries)) + b"".join(records) + b"\0\0\0\0" + extra)
    struct.pack_into("<I", out, 8 + 2 + 12 * strip_record + 8, len(out))
    path.write_bytes(bytes(out) + pixels)


def _mean_rgb(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


def _roundtrip(ctx: Context, name: str, suffix: str, save: Callable[[Any, Path], None], tolerance: float) -> str:
    """Encode a generated picture with ``save``, decode it through the app's own reader, compare."""
    from vitfeat_desktop.core.images import open_image

    source = synthetic_photo(99)
    path = ctx.workdir / "codecs" / f"roundtrip{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    save(source, path)
    decoded = open_image(path)
    if decoded.size != source.size:
        raise CheckFailed(f"{name}: decoded size {decoded.size}, expected {source.size}")
    diff = float(np.abs(_mean_rgb(decoded) - _mean_rgb(source)).max())
    if diff > tolerance:
        raise CheckFailed(f"{name}: decoded colours differ by {diff:.1f}")
    return name


# ---------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------
def check_python(ctx: Context) -> str:
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "source install"
    from vitfeat_desktop import __version__

    return (f"vitfeat {__version__}, Python {platform.python_version()} ({frozen}), "
            f"{platform.system()} {platform.machine()}")


def check_onnxruntime(ctx: Context) -> str:
    # Imported before PySide6 on purpose (see gui/app.py): both ship OpenMP/ICU-style shared libraries and the
    # first one loaded wins on some platforms.
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        raise CheckFailed(f"CPUExecutionProvider missing (have {providers})")
    return f"onnxruntime {ort.__version__}, providers {', '.join(providers)}"


def check_onnx(ctx: Context) -> str:
    """onnx and onnxruntime's quantizer build the tiny model; both are imported lazily, so a bundle can lack them."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic  # noqa: F401

    return f"onnx {onnx.__version__} and the int8 quantizer importable"


def check_hnswlib(ctx: Context) -> str:
    import hnswlib

    rng = np.random.default_rng(0)
    data = rng.standard_normal((200, 16)).astype(np.float32)
    index = hnswlib.Index(space="cosine", dim=16)
    index.init_index(max_elements=200, ef_construction=100, M=16)
    index.add_items(data, np.arange(200))
    path = ctx.workdir / "hnsw.bin"
    index.save_index(str(path))
    loaded = hnswlib.Index(space="cosine", dim=16)
    loaded.load_index(str(path), max_elements=200)
    loaded.set_ef(50)
    labels, _ = loaded.knn_query(data[:20], k=1)
    hits = int((labels[:, 0] == np.arange(20)).sum())
    if hits < 19:
        raise CheckFailed(f"only {hits}/20 vectors found themselves after save/load")
    return f"build, save, load and query of 200 vectors ({hits}/20 self-hits)"


def check_opencv(ctx: Context) -> str:
    """OpenCV decides whether two files are one capture (core/dupes/align.py: ORB + RANSAC); a bundle missing its
    native parts would only fail at the first duplicate search, so line a picture up with its resized crop."""
    from PIL import Image

    from vitfeat_desktop.core.dupes import align

    rng = np.random.default_rng(1)
    base = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    picture = Image.fromarray(base).resize((640, 480), Image.Resampling.BICUBIC)
    a, b = ctx.workdir / "align_a.png", ctx.workdir / "align_b.png"
    picture.save(a)
    picture.crop((80, 60, 560, 420)).resize((320, 240), Image.Resampling.LANCZOS).save(b)
    found = align.align_pair(a, b)
    if found is None or abs(found.scale - 1.5) > 0.05:
        raise CheckFailed("ORB + RANSAC could not line a picture up with its resized crop"
                          + ("" if found is None else f" (scale {found.scale:.2f}, expected 1.50)"))
    import cv2

    return f"OpenCV {cv2.__version__}: a resized crop lined up (scale {found.scale:.2f}, {found.inliers} points)"


def check_pillow(ctx: Context) -> str:
    from PIL import Image, features

    done = []
    missing = []
    for fmt, suffix in PILLOW_FORMATS:
        if fmt == "AVIF" and not features.check("avif"):
            missing.append("AVIF (Pillow built without libavif)")
            continue
        if fmt == "WEBP" and not features.check("webp"):
            missing.append("WEBP (Pillow built without libwebp)")
            continue
        lossy = fmt in ("JPEG", "WEBP", "AVIF")
        options: dict[str, Any] = {"quality": 90} if lossy else {}

        def save(image: Any, path: Path, fmt: str = fmt, options: dict[str, Any] = options) -> None:
            image.save(path, fmt, **options)

        done.append(_roundtrip(ctx, fmt, suffix, save, 12.0 if lossy else 0.5))
    if missing:
        raise CheckFailed("missing codecs: " + "; ".join(missing))
    return f"Pillow {Image.__version__}: {', '.join(done)} encode+decode"


def check_heic(ctx: Context) -> str:
    """Decode the bundled HEIC sample: the app ships the decode-only libheif (pi-heif), so it cannot make one."""
    try:
        import pi_heif as heif
    except ImportError:
        try:
            import pillow_heif as heif
        except ImportError as exc:
            raise CheckFailed(f"pi-heif is not in this build ({exc})") from exc
    from vitfeat_desktop.core.images import open_image

    sample = Path(__file__).resolve().parents[1] / "resources" / "selftest.heic"
    if not sample.is_file():
        raise CheckFailed(f"the HEIC sample {sample} is missing from this build")
    source = synthetic_photo(99, (160, 120))  # what the sample was encoded from
    decoded = open_image(sample)
    if decoded.size != source.size:
        raise CheckFailed(f"HEIC: decoded size {decoded.size}, expected {source.size}")
    diff = float(np.abs(_mean_rgb(decoded) - _mean_rgb(source)).max())
    if diff > 12.0:
        raise CheckFailed(f"HEIC: decoded colours differ by {diff:.1f}")
    info = heif.libheif_info()
    decoders = ", ".join(info.get("decoders", {})) or "?"
    encoders = [e for e in info.get("encoders", {}) if e != "mask"]
    return (f"{heif.__name__} {heif.__version__}, libheif {info.get('libheif')}: HEIC decode ({decoders}); "
            f"encoders: {', '.join(encoders) or 'none (decode-only build)'}")


def check_tls(ctx: Context) -> str:
    """Model downloads need a verifying HTTPS context with CA certificates (a frozen macOS app finds none of its
    own); this builds the exact context the downloader uses, offline."""
    import ssl

    from vitfeat_desktop.core.models import http_client

    context = http_client.tls_context()
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise CheckFailed("the HTTPS context does not verify certificates")
    count, sources = http_client.tls_trust()
    if count < 10:
        raise CheckFailed(f"the HTTPS context holds {count} CA certificates ({', '.join(sources) or 'no source'}); "
                          "model downloads would fail with CERTIFICATE_VERIFY_FAILED")
    return f"{ssl.OPENSSL_VERSION}, {count} CA certificates ({', '.join(sources)})"


def check_raw(ctx: Context) -> str:
    try:
        import rawpy
    except ImportError as exc:
        raise CheckFailed(f"rawpy is not in this build ({exc})") from exc
    y, x = np.mgrid[0:120, 0:160]
    rgb = np.stack([x * 400, y * 500, np.full_like(x, 20000)], axis=-1)
    path = ctx.workdir / "codecs" / "linear.dng"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_linear_dng(path, rgb)
    from vitfeat_desktop.core.images import open_image

    image = open_image(path)
    if min(image.size) < 50:
        raise CheckFailed(f"decoded DNG is only {image.size}")
    version = ".".join(str(v) for v in rawpy.libraw_version)
    return f"LibRaw {version}: DNG decode {image.size[0]}x{image.size[1]}"


def check_qt(ctx: Context) -> str:
    from PySide6 import QtCore, QtGui, QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(["vitfeat-desktop"])  # platform from QT_QPA_PLATFORM (see _isolated_env)
    ctx.qt_app = app
    platform_name = QtGui.QGuiApplication.platformName()
    plugins = Path(QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath))
    available = sorted(p.name for p in (plugins / "platforms").glob("*") if p.is_file())
    native = NATIVE_QT_PLATFORM.get(sys.platform)
    if native and not any(native in name for name in available):
        raise CheckFailed(f"the {native} platform plugin is missing from {plugins / 'platforms'}")
    # Qt's own image plugins decode thumbnails in the GUI; JPEG goes through the qjpeg plugin.
    jpeg = ctx.workdir / "codecs" / "qt.jpg"
    jpeg.parent.mkdir(parents=True, exist_ok=True)
    synthetic_photo(7).save(jpeg, "JPEG")
    image = QtGui.QImage(str(jpeg))
    if image.isNull():
        raise CheckFailed("QImage cannot read a JPEG (imageformats plugin missing)")
    return (f"PySide6 {QtCore.qVersion()}, platform {platform_name}; platform plugins: "
            f"{', '.join(n.split('.')[0] for n in available)}")


def check_model(ctx: Context) -> str:
    from vitfeat_desktop.core.pipeline import pipeline

    if ctx.model_arg:
        folder = Path(ctx.model_arg).expanduser()
        if not folder.is_dir():
            raise CheckFailed(f"--model {ctx.model_arg}: not a folder")
        source = "given"
    else:
        from vitfeat_desktop.selftest.tinyvit import write_model_folder

        with _quiet_root_logger():  # the quantizer logs advice about pre-processing that means nothing here
            folder = write_model_folder(ctx.workdir / "models" / "tiny-vit", quantized=ctx.quantized)
        source = "generated tiny ViT"
    extractor = pipeline("image-feature-extraction", model=folder, quantized=ctx.quantized)
    try:
        images = [synthetic_photo(i) for i in range(3)]
        vectors = extractor.embed(extractor.preprocess(images))
        hidden = extractor(images[:1])
    finally:
        extractor.close()
    if vectors.shape != (3, extractor.embedding_dim) or not np.isfinite(vectors).all():
        raise CheckFailed(f"bad embedding {vectors.shape} (finite: {bool(np.isfinite(vectors).all())})")
    if hidden.ndim != 3 or hidden.shape[0] != 1:
        raise CheckFailed(f"bad last_hidden_state shape {hidden.shape}")
    if np.allclose(vectors[0], vectors[1]):
        raise CheckFailed("different pictures gave the same vector")
    ctx.model_folder = folder
    return (f"{source} {extractor.model_id} ({extractor.variant}): embed {vectors.shape}, "
            f"hidden {tuple(hidden.shape)}")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _write_photos(ctx: Context) -> list[Path]:
    """The folder the library check scans: several formats, plus a re-encoded smaller copy of photo 0."""
    ctx.photos_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    formats = [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")]
    for i in range(N_PHOTOS):
        fmt, suffix = formats[i % len(formats)]
        path = ctx.photos_dir / f"photo_{i:02d}{suffix}"
        synthetic_photo(i).save(path, fmt)
        paths.append(path)
    near = synthetic_photo(0).resize((240, 180))
    near_path = ctx.photos_dir / "photo_00_copy.jpg"
    near.save(near_path, "JPEG", quality=70)
    paths.append(near_path)
    return paths


def _result_path(item: Any) -> Path | None:
    """Library result items may be tuples ``(path, score)``, objects with ``.path``, or plain paths."""
    for attr in ("path", "file", "filename"):
        value = getattr(item, attr, None)
        if value is not None:
            return Path(value)
    if isinstance(item, tuple | list) and item:
        return Path(item[0]) if isinstance(item[0], str | os.PathLike) else None
    if isinstance(item, str | os.PathLike):
        return Path(item)
    return None


def check_library(ctx: Context) -> str:
    try:
        from vitfeat_desktop.core.library.facade import Library
    except ImportError as exc:
        raise CheckFailed(f"vitfeat_desktop.core.library.facade is not part of this build ({exc})") from exc
    if ctx.model_folder is None:
        raise CheckSkipped("needs the model check")
    paths = _write_photos(ctx)
    library = Library.open(ctx.photos_dir, model=str(ctx.model_folder), quantized=ctx.quantized)
    try:
        library.scan()
        results = list(library.similar(paths[0], 3))
    finally:
        library.close()
    if not results:
        raise CheckFailed("the query returned nothing")
    found = [_result_path(r) for r in results]
    names = [p.name for p in found if p is not None]
    copy = paths[-1].name
    if copy not in names:
        raise CheckFailed(f"the near-duplicate {copy} is not among the 3 nearest of photo_00: {names}")
    return f"scanned {len(paths)} files, query top-3: {', '.join(names)}"


def check_window(ctx: Context) -> str:
    try:
        from vitfeat_desktop.gui.app import build_window, ensure_application
    except ImportError as exc:
        raise CheckFailed(f"vitfeat_desktop.gui.app.build_window is not part of this build ({exc})") from exc
    if ctx.qt_app is None:  # run without the qt check (--only ...)
        ctx.qt_app = ensure_application()
    from PySide6.QtCore import qInstallMessageHandler

    # Qt's own chatter (e.g. the offscreen platform's "does not support propagateSizeHints()") would break the
    # one-line-per-check output; keep it with the app's log warnings instead.
    previous = qInstallMessageHandler(lambda _kind, _context, message: ctx.warnings.append(str(message)))
    try:
        start = time.perf_counter()
        folder = ctx.photos_dir if ctx.photos_dir.is_dir() else None
        model = str(ctx.model_folder) if ctx.model_folder else None
        window = build_window(folder=folder, model=model)
        window.show()
        shown = _wait_exposed(ctx.qt_app, window)
        elapsed = time.perf_counter() - start
        title = window.windowTitle()
        window.close()
        window.deleteLater()
        _process_events(ctx.qt_app, 0.2)
    finally:
        qInstallMessageHandler(previous)
    if not shown:
        raise CheckFailed("the main window was not shown within 10 s")
    return f"main window {title!r} shown in {elapsed:.2f} s and closed; icon: {_icon_source()}"


def _icon_source() -> str:
    """Which app icon the window got: the packaged ``resources/icon.png`` or the GUI's drawn fallback."""
    try:
        from vitfeat_desktop.gui.app import icon_path
    except ImportError:
        return "unknown"
    path = icon_path()
    return f"{path.parent.name}/{path.name}" if path is not None else "drawn fallback (resources/icon.png missing)"


def _process_events(app: Any, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait_exposed(app: Any, window: Any, timeout: float = 10.0) -> bool:
    """Pump events until the window is visible and exposed (the offscreen platform exposes it at once)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        handle = window.windowHandle()
        if window.isVisible() and handle is not None and handle.isExposed():
            return True
        time.sleep(0.005)
    return False


CHECKS: tuple[tuple[str, Callable[[Context], str]], ...] = (
    ("python", check_python),
    ("onnxruntime", check_onnxruntime),
    ("onnx", check_onnx),
    ("hnswlib", check_hnswlib),
    ("opencv", check_opencv),
    ("pillow", check_pillow),
    ("heic", check_heic),
    ("raw", check_raw),
    ("tls", check_tls),
    ("qt", check_qt),
    ("model", check_model),
    ("library", check_library),
    ("window", check_window),
)


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------
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


def startup_probe(out: TextIO | None = None) -> int:
    """Create the app and its main window the way ``run_app`` does, quit as soon as it is shown.

    Why a separate mode: the cold start users feel (bundle bootloader, Python start-up, imports, first paint)
    is measured from outside by timing this process (``packaging/bench_startup.py``); the printed in-process
    figures split it up. The window is built without restoring the last library, so the figure is the same
    on every machine.
    """
    out = out or sys.stdout
    # Without a cached model the window starts the first-run download; that is not start-up time, and a probe
    # must not reach for the network.
    os.environ.setdefault("VITFEAT_OFFLINE", "1")
    t0 = time.perf_counter()
    try:
        from vitfeat_desktop.gui.app import build_window, ensure_application
    except ImportError as exc:
        print(f"FAIL startup: the main window is not part of this build ({exc})", file=out)
        return 1
    t_import = time.perf_counter()
    app = ensure_application()
    window = build_window(restore=False)
    window.show()
    shown = _wait_exposed(app, window)
    t_shown = time.perf_counter()
    since_start = _seconds_since_process_start()
    window.close()
    _process_events(app, 0.1)
    if not shown:
        print("FAIL startup: the main window was not shown within 10 s", file=out)
        return 1
    total = f"{since_start:.2f} s after process start; " if since_start is not None else ""
    print(f"ok   startup: window shown {total}imports {t_import - t0:.2f} s, app+window {t_shown - t_import:.2f} s",
          file=out, flush=True)
    return 0


def _seconds_since_process_start() -> float | None:
    """Wall time since this process was created (Linux /proc), None where the OS does not tell us cheaply."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


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
