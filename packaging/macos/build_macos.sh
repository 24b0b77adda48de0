#!/usr/bin/env bash
# Build "vitfeat desktop.app" and a drag-to-Applications .dmg on macOS.
#
#   packaging/macos/build_macos.sh            # PYTHON=python3 by default
#
# The .app comes from the same PyInstaller spec as the other platforms (its BUNDLE step, with
# packaging/macos/Info.plist: document types for images and folders, NSHighResolutionCapable, the icon).
# Contents/MacOS holds both executables: vitfeat-desktop (the app) and vitfeat (the CLI).
# Not notarised: that needs an Apple developer identity (set CODESIGN_IDENTITY to sign with one).
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
plutil -lint "$APP_DIR/Contents/Info.plist"
/usr/libexec/PlistBuddy -c 'Print :NSHighResolutionCapable' "$APP_DIR/Contents/Info.plist"
[[ -f "$APP_DIR/Contents/Resources/vitfeat-desktop.icns" ]] || { echo "icon missing from the .app" >&2; exit 1; }

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
hdiutil create -volname "vitfeat desktop" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
rm -rf "$STAGE"
echo "dmg: $DMG ($(du -h "$DMG" | cut -f1))"
