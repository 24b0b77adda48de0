"""The self-test's checks of the bundle's native parts, the model and a library: each returns its one-line
detail or raises :class:`CheckFailed` / :class:`CheckSkipped`.

Each check imports what it checks inside the function, on purpose: a bundle that lacks a library must give that
check's FAIL line, not stop the whole self-test at import; and onnxruntime must load before PySide6 (see
``check_onnxruntime``). The window check, the only one that needs the GUI, is in ``window.py``.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfeat_desktop.selftest.context import CheckFailed, CheckSkipped, Context
from vitfeat_desktop.selftest.fixtures import mean_rgb, synthetic_photo, write_linear_dng

if TYPE_CHECKING:
    from PIL import Image

# The Qt platform plugin each OS's users need; the bundle must carry it even though we test offscreen.
NATIVE_QT_PLATFORM = {"linux": "xcb", "win32": "windows", "darwin": "cocoa"}

# Pillow formats the app promises to read (HEIC and RAW are separate checks: they use other libraries).
PILLOW_FORMATS = (("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("AVIF", ".avif"), ("TIFF", ".tif"))

# How many generated "photos" the library check indexes (plus one near-duplicate of the first).
N_PHOTOS = 6


def _roundtrip(ctx: Context, name: str, suffix: str, save: Callable[[Image.Image, Path], None],
               tolerance: float) -> str:
    """Encode a generated picture with ``save``, decode it through the app's own reader, compare."""
    from vitfeat_desktop.core.images import open_image

    source = synthetic_photo(99)
    path = ctx.workdir / "codecs" / f"roundtrip{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    save(source, path)
    decoded = open_image(path)
    if decoded.size != source.size:
        raise CheckFailed(f"{name}: decoded size {decoded.size}, expected {source.size}")
    diff = float(np.abs(mean_rgb(decoded) - mean_rgb(source)).max())
    if diff > tolerance:
        raise CheckFailed(f"{name}: decoded colours differ by {diff:.1f}")
    return name


def check_python(ctx: Context) -> str:
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "source install"
    from vitfeat_desktop.version import __version__

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

        def save(image: Image.Image, path: Path, fmt: str = fmt, options: dict[str, Any] = options) -> None:
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

    sample = Path(__file__).resolve().parent / "selftest.heic"  # shipped with this package
    if not sample.is_file():
        raise CheckFailed(f"the HEIC sample {sample} is missing from this build")
    source = synthetic_photo(99, (160, 120))  # what the sample was encoded from
    decoded = open_image(sample)
    if decoded.size != source.size:
        raise CheckFailed(f"HEIC: decoded size {decoded.size}, expected {source.size}")
    diff = float(np.abs(mean_rgb(decoded) - mean_rgb(source)).max())
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


def check_library(ctx: Context) -> str:
    from vitfeat_desktop.core.library.facade import Library

    if ctx.model_folder is None:
        raise CheckSkipped("needs the model check")
    paths = _write_photos(ctx)
    library = Library.open(ctx.photos_dir, model=str(ctx.model_folder), quantized=ctx.quantized)
    try:
        library.scan()
        results = library.similar(paths[0], 3)
    finally:
        library.close()
    if not results:
        raise CheckFailed("the query returned nothing")
    names = [Path(r.path).name for r in results]
    copy = paths[-1].name
    if copy not in names:
        raise CheckFailed(f"the near-duplicate {copy} is not among the 3 nearest of photo_00: {names}")
    return f"scanned {len(paths)} files, query top-3: {', '.join(names)}"


