#!/usr/bin/env bash
# Build "vitfeat desktop.app" and a drag-to-Applications .dmg on macOS.
#
#   packaging/macos/build_macos.sh            # PYTHON=python3 by default
#
# The .app comes from the same PyInstaller spec as the other platforms (its BUNDLE step, with
# packaging/macos/Info.plist: document types for images and folders, NSHighResolutionCapable, the icon).
# Contents/MacOS holds both executables: vitfeat-desktop (the app) and vitfeat (the CLI).
# Not notarised: that needs an Apple developer identity (set CODESIGN_IDENTITY to sign with one).
# LSMinimumSystemVersion is derived from the bundled libraries (packaging/check_bundle.py macos), not guessed.
# Intel Macs: build with packaging/constraints/release-macos-x86_64.txt (the last onnxruntime/rawpy with
# x86_64 wheels), never by compiling LibRaw on the runner.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
OUT="$REPO/packaging/out"
APP_DIR="$OUT/dist/vitfeat desktop.app"
VERSION="$("$PYTHON" -c 'import vitfeat_desktop; print(vitfeat_desktop.__version__)')"
ARCH="$(uname -m)"
DMG="$OUT/vitfeat-desktop-${VERSION}-macos-${ARCH}.dmg"

plutil -lint packaging/macos/Info.plist
"$PYTHON" resources/make_icon.py "$OUT/icons" >/dev/null
VITFEAT_ICON_DIR="$OUT/icons" "$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$OUT/dist" --workpath "$OUT/work" packaging/vitfeat.spec

for exe in vitfeat-desktop vitfeat; do
    [[ -x "$APP_DIR/Contents/MacOS/$exe" ]] || { echo "missing Contents/MacOS/$exe" >&2; exit 1; }
done
[[ -f "$APP_DIR/Contents/Resources/vitfeat-desktop.icns" ]] || { echo "icon missing from the .app" >&2; exit 1; }

# What the .app demands of the Mac: the oldest macOS is the highest minimum any bundled Mach-O file declares
# (onnxruntime's arm64 wheels say 14.0, the x86_64 ones 13.0), written into Info.plist before signing, then
# checked again; hnswlib must be the portable build (HNSWLIB_NO_NATIVE=1); the notices must be in Resources.
CHECK=("$PYTHON" "$REPO/packaging/check_bundle.py")
"${CHECK[@]}" macos --app "$APP_DIR" --arch "$ARCH" --write
plutil -convert xml1 "$APP_DIR/Contents/Info.plist"
"${CHECK[@]}" macos --app "$APP_DIR" --arch "$ARCH"
if [[ "$ARCH" == x86_64 ]]; then "${CHECK[@]}" isa --bundle "$APP_DIR" --baseline x86-64; \
else "${CHECK[@]}" isa --bundle "$APP_DIR" --machine arm64; fi
"${CHECK[@]}" notices --bundle "$APP_DIR"
plutil -lint "$APP_DIR/Contents/Info.plist"
/usr/libexec/PlistBuddy -c 'Print :NSHighResolutionCapable' "$APP_DIR/Contents/Info.plist"

# Apple silicon runs nothing unsigned: sign the whole .app ad hoc, or with a real identity when given.
if [[ -n "${CODESIGN_IDENTITY:-}" ]]; then
    codesign --force --deep --options runtime --timestamp -s "$CODESIGN_IDENTITY" "$APP_DIR"
else
    codesign --force --deep -s - "$APP_DIR"
fi
codesign --verify --deep --strict "$APP_DIR"
echo "app: $(du -sh "$APP_DIR" | cut -f1)"

STAGE="$OUT/dmg-stage"
rm -rf "$STAGE" "$DMG" && mkdir -p "$STAGE"
cp -R "$APP_DIR" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
cp "$APP_DIR/Contents/Resources/THIRD-PARTY-NOTICES.txt" "$STAGE/" 2>/dev/null || true
hdiutil create -volname "vitfeat desktop" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
rm -rf "$STAGE"
(cd "$OUT" && shasum -a 256 "$(basename "$DMG")" > "$(basename "$DMG").sha256")
echo "dmg: $DMG ($(du -h "$DMG" | cut -f1)), sha256 $(cut -c1-16 "$DMG.sha256")..."
