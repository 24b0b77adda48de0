#!/usr/bin/env bash
# Build the Linux one-folder bundle, the .deb and the portable .tar.gz.
#
#   packaging/build_linux.sh            # uses .venv/bin/python, writes packaging/out/
#   PYTHON=python3 packaging/build_linux.sh
#   SKIP_PYINSTALLER=1 ...              # repackage an existing packaging/out/dist/vitfeat-desktop
#   CLEAN=1 ...                         # throw away PyInstaller's analysis cache first
#
# Outputs (packaging/out/):
#   dist/vitfeat-desktop/                               the bundle (vitfeat-desktop + vitfeat executables)
#   vitfeat-desktop_<version>_<arch>.deb                installs into /opt/vitfeat-desktop
#   vitfeat-desktop-<version>-linux-<arch>.tar.gz       the same bundle, portable
#   *.sha256                                            SHA-256 of each, in sha256sum's format
#
# Checks (packaging/check_bundle.py), each fails the build: hnswlib within x86-64 (build it with
# HNSWLIB_NO_NATIVE=1), third-party notices present, the .deb's libc6 (>= x.y) equal to the highest glibc symbol
# version any bundled library needs (the build environment decides it: build on the oldest base you support).
#
# No AppImage: appimagetool is neither packaged in Debian nor on PyPI, and this build must work offline.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
OUT="$REPO/packaging/out"
APP=vitfeat-desktop
VERSION="$("$PYTHON" -c 'import vitfeat_desktop; print(vitfeat_desktop.__version__)')"
ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
DEB="$OUT/${APP}_${VERSION}_${ARCH}.deb"
TARBALL="$OUT/${APP}-${VERSION}-linux-${ARCH}.tar.gz"

log() { printf '[build_linux %(%H:%M:%S)T] %s\n' -1 "$*"; }
SECONDS=0

log "icons"
"$PYTHON" "$REPO/resources/make_icon.py" "$OUT/icons" >/dev/null

if [[ "${SKIP_PYINSTALLER:-0}" != 1 ]]; then
    log "PyInstaller bundle (this is the slow part)"
    clean=()
    [[ "${CLEAN:-0}" == 1 ]] && clean=(--clean)
    VITFEAT_ICON_DIR="$OUT/icons" "$PYTHON" -m PyInstaller --noconfirm "${clean[@]}" --log-level WARN \
        --distpath "$OUT/dist" --workpath "$OUT/work" "$REPO/packaging/vitfeat.spec"
fi
BUNDLE="$OUT/dist/$APP"
[[ -x "$BUNDLE/$APP" && -x "$BUNDLE/vitfeat" ]] || { echo "no bundle at $BUNDLE" >&2; exit 1; }
log "bundle: $(du -sh "$BUNDLE" | cut -f1)"

# ---- what the bundle demands of the user's machine ----------------------------------------------------
# hnswlib has no wheels: pip compiles it, and without HNSWLIB_NO_NATIVE=1 with -march=native (AVX-512 on a big
# runner: "Illegal instruction" on users' CPUs). Fail unless its extension stays within x86-64 (SSE2).
CHECK=("$PYTHON" "$REPO/packaging/check_bundle.py")
log "instruction set of hnswlib (baseline x86-64)"
"${CHECK[@]}" isa --bundle "$BUNDLE" --baseline x86-64
"${CHECK[@]}" notices --bundle "$BUNDLE"
# The oldest glibc the bundle starts on is the highest GLIBC_x.y symbol version its libraries need (libpython,
# libstdc++, the wheels' libraries): that, not a guess, is the .deb's libc6 dependency.
LIBC_MIN="$("${CHECK[@]}" glibc --bundle "$BUNDLE" --print)"
"${CHECK[@]}" glibc --bundle "$BUNDLE"

# ---- .deb --------------------------------------------------------------------------------------------
log ".deb"
ROOT="$OUT/deb-root"
rm -rf "$ROOT"
mkdir -p "$ROOT/DEBIAN" "$ROOT/opt" "$ROOT/usr/bin" "$ROOT/usr/share/applications" \
         "$ROOT/usr/share/doc/$APP"
cp -a "$BUNDLE" "$ROOT/opt/$APP"
# Absolute links, as Debian policy wants between top-level directories; the bundle finds its files through
# its real path, and a `dpkg -x` root (the tests) runs the targets under <root>/opt.
ln -s "/opt/$APP/$APP" "$ROOT/usr/bin/$APP"
ln -s "/opt/$APP/vitfeat" "$ROOT/usr/bin/vitfeat"
install -m 644 "$REPO/resources/$APP.desktop" "$ROOT/usr/share/applications/$APP.desktop"
for dir in "$OUT"/icons/hicolor/*/; do
    size="$(basename "$dir")"
    install -D -m 644 "$dir/apps/$APP.png" "$ROOT/usr/share/icons/hicolor/$size/apps/$APP.png"
done
cat > "$ROOT/usr/share/doc/$APP/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vitfeat-desktop

Files: *
Copyright: 2026 vitfeat developers
License: MIT
Comment: The bundle in /opt/$APP contains Python, Qt (LGPLv3, dynamically linked), ONNX Runtime
 (MIT), hnswlib (Apache-2.0), Pillow (MIT-CMU), libheif and libde265 (LGPLv3, decode-only), LibRaw
 (LGPLv2.1) and their dependencies, each under its own licence: see THIRD-PARTY-NOTICES.txt here.
EOF
install -m 644 "$BUNDLE/THIRD-PARTY-NOTICES.txt" "$ROOT/usr/share/doc/$APP/THIRD-PARTY-NOTICES.txt"
printf '%s (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- vitfeat developers <vitfeat@users.noreply.github.com>  %s\n' \
    "$APP" "$VERSION" "$VERSION" "$(date -R)" | gzip -9n > "$ROOT/usr/share/doc/$APP/changelog.gz"
INSTALLED_KB="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
# Libraries PyInstaller deliberately leaves to the system (GL, fontconfig, X11/xcb bits Qt's xcb plugin loads).
# Desktop/icon caches are refreshed by the dpkg triggers of desktop-file-utils and hicolor-icon-theme.
cat > "$ROOT/DEBIAN/control" <<EOF
Package: $APP
Version: $VERSION
Section: graphics
Priority: optional
Architecture: $ARCH
Installed-Size: $INSTALLED_KB
Maintainer: vitfeat developers <vitfeat@users.noreply.github.com>
Depends: libc6 (>= $LIBC_MIN), libgl1, libegl1, libfontconfig1, libfreetype6, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0, libxcb-xkb1, libxcb-render-util0, libxcb-image0, libx11-xcb1, libdbus-1-3
Recommends: hicolor-icon-theme, desktop-file-utils
Homepage: https://github.com/vitfeat/vitfeat-desktop
Description: find duplicate and similar photos with Vision Transformer features
 vitfeat desktop indexes your photo folders with a Vision Transformer (ONNX
 Runtime, on the CPU), lets you browse them by similarity and finds exact and
 near duplicates. Nothing is ever written inside your photo folders; removing
 a photo moves it to the trash, with undo.
 .
 Commands: vitfeat-desktop (the app) and vitfeat (command line).
EOF
find "$ROOT" -type d -exec chmod 755 {} +
rm -f "$DEB"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-gzip}" -z"${DEB_LEVEL:-6}" --build "$ROOT" "$DEB" >/dev/null
log "$(basename "$DEB"): $(du -h "$DEB" | cut -f1)"
"${CHECK[@]}" glibc --bundle "$BUNDLE" --deb "$DEB"  # the declared libc6 is what the bundled libraries need

# ---- portable tar.gz ---------------------------------------------------------------------------------
log "tar.gz"
SHARE="$OUT/tar-extra"
rm -rf "$SHARE" && mkdir -p "$SHARE"
cp "$REPO/resources/$APP.desktop" "$OUT/icons/hicolor/256x256/apps/$APP.png" "$SHARE/"
tar -C "$OUT/dist" -czf "$TARBALL" "$APP" \
    --transform "s,^tar-extra,$APP/share," -C "$OUT" tar-extra/"$APP".desktop tar-extra/"$APP".png
log "$(basename "$TARBALL"): $(du -h "$TARBALL" | cut -f1)"
rm -rf "$ROOT" "$SHARE"

# ---- checksums, published next to each installer ----------------------------------------------------------
for file in "$DEB" "$TARBALL"; do
    (cd "$OUT" && sha256sum "$(basename "$file")" > "$(basename "$file").sha256")
done
log "sha256 $(cut -c1-16 "$DEB.sha256")... $(basename "$DEB")"
log "done in ${SECONDS} s"
