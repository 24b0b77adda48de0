"""Write THIRD-PARTY-NOTICES.txt for a bundle: every component it ships, its licence, and the licence texts.

Every installer (.deb, tar.gz, Windows setup, macOS .app) carries this file, because the LGPL parts (Qt,
libheif, libde265, LibRaw) and the Apache/BSD/MIT ones ask for their notices to travel with binaries. The list
of Python distributions is the runtime dependency closure of pyproject.toml's ``dependencies`` as installed in
the build environment (so the versions are the bundled ones); the native libraries inside those wheels are
named in the header, with where their texts are found below.

    python packaging/notices.py OUT.txt          (the spec calls it; build scripts need not)
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Licence texts some wheels leave out (PySide6/shiboken6 ship none; pi-heif's libheif/libde265 are LGPL-3.0,
# which is the GPL-3.0 plus additional permissions), from resources/licenses/ (verbatim FSF texts).
EXTRA_TEXTS = {"pyside6-essentials": ("LGPL-3.0.txt", "GPL-3.0.txt"), "shiboken6": ("LGPL-3.0.txt",),
               "pi-heif": ("LGPL-3.0.txt",)}
# Never in the bundle (vitfeat.spec excludes them) although a dependency names them.
NOTICE_NAME = "THIRD-PARTY-NOTICES.txt"
NOT_BUNDLED = {"sympy", "mpmath", "setuptools", "pip", "pillow-heif"}

HEADER = """vitfeat desktop: third-party notices
====================================

vitfeat desktop itself is MIT-licensed. This bundle also contains the components below, each under its own
licence; their licence texts follow. Components under the LGPL (Qt, libheif, libde265, LibRaw) are linked
dynamically: their shared libraries sit in the bundle's folders (PySide6/Qt/lib or PySide6/*.dll / Frameworks,
pi_heif.libs, rawpy) and may be replaced by a user-built version of the same interface. Their sources are at
https://download.qt.io/official_releases/qt/ (Qt), https://github.com/strukturag/libheif (libheif),
https://github.com/strukturag/libde265 (libde265) and https://www.libraw.org (LibRaw).

Native components inside the bundled packages:
  Python (PSF-2.0) and OpenSSL (Apache-2.0)       the interpreter and its ssl module
  Qt 6 (LGPL-3.0) via PySide6/shiboken6            the user interface
  ONNX Runtime (MIT) and its ThirdPartyNotices     inference
  hnswlib (Apache-2.0)                             the similarity index
  libheif and libde265 (LGPL-3.0) via pi-heif      HEIC decoding (decode-only build: no x265 encoder)
  LibRaw (LGPL-2.1 or CDDL-1.0) via rawpy          camera RAW decoding
  libjpeg-turbo, libpng, libtiff, libwebp, libavif/dav1d, zlib, freetype and others via Pillow (see its licence)
  OpenBLAS and others via numpy (see its licence)
  PyInstaller's bootloader (GPL-2.0 with the bootloader exception)
"""


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> list[md.Distribution]:
    """Installed distributions the app needs at run time, following Requires-Dist without extras."""
    import tomllib
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = default_environment()
    todo = [Requirement(r).name for r in project["dependencies"]]
    seen: dict[str, md.Distribution] = {}
    while todo:
        name = _canon(todo.pop())
        if name in seen or name in NOT_BUNDLED:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(req.name)
    return sorted(seen.values(), key=lambda d: _canon(d.metadata["Name"]))


def licence_of(dist: md.Distribution) -> str:
    meta = dist.metadata
    text = meta.get("License-Expression") or ""
    if not text:
        short = (meta.get("License") or "").strip()
        text = short if short and "\n" not in short and len(short) < 80 else ""
    if not text:
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
        text = ", ".join(classifiers) or "see the licence text below"
    return text


def licence_files(dist: md.Distribution) -> list[Path]:
    files = []
    for entry in dist.files or []:
        posix = str(entry).replace("\\", "/")
        name = posix.rsplit("/", 1)[-1]
        in_dist_info = ".dist-info/" in posix
        if (in_dist_info and ("/licenses/" in posix or re.match(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", name, re.I))) \
                or (not in_dist_info and posix.count("/") == 1
                    and re.match(r"(LICEN[CS]E|COPYING|NOTICE|ThirdPartyNotices)", name, re.I)):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file() and path.suffix.lower() not in (".py", ".pyc", ".so", ".dll", ".pyd"):
                files.append(path)
    return sorted(set(files))


def python_licence() -> Path | None:
    for candidate in (Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                      / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE.txt"):
        if candidate.is_file():
            return candidate
    return None


def render() -> str:
    dists = runtime_closure()
    parts = [HEADER, "\nPython packages in this bundle:\n"]
    for dist in dists:
        parts.append(f"  {dist.metadata['Name']} {dist.version}: {licence_of(dist)}\n")
    pylic = python_licence()
    if pylic is not None:
        parts.append(f"\n\n{'=' * 100}\nPython {sys.version.split()[0]}\n{'=' * 100}\n")
        parts.append(pylic.read_text(encoding="utf-8", errors="replace"))
    for dist in dists:
        for path in licence_files(dist):
            parts.append(f"\n\n{'=' * 100}\n{dist.metadata['Name']} {dist.version}: {path.name}\n{'=' * 100}\n")
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
        for name in EXTRA_TEXTS.get(_canon(dist.metadata["Name"]), ()):
            path = REPO / "resources" / "licenses" / name
            parts.append(f"\n\n{'=' * 100}\n{dist.metadata['Name']} {dist.version}: {name}\n{'=' * 100}\n")
            parts.append(path.read_text(encoding="utf-8"))
        if not licence_files(dist) and _canon(dist.metadata["Name"]) not in EXTRA_TEXTS:
            parts.append(f"\n\n{'=' * 100}\n{dist.metadata['Name']} {dist.version}: {licence_of(dist)}\n"
                         f"{'=' * 100}\n(no licence file in the distribution; licence as declared above)\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"{out}: {out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
