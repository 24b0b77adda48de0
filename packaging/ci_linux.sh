#!/usr/bin/env bash
# CI gate for the Linux packages: build the bundle, .deb and tar.gz, install the .deb into a throw-away root
# (dpkg-deb -x: no root rights, nothing installed on the CI machine) and run what it installed:
#   1. vitfeat-desktop --self-test, then again with ../shared/models/dinov2-small-imgfocus when present
#   2. vitfeat extract on a real photo (when ../shared/data/photos is present) or a generated one
#   3. vitfeat-desktop --self-test --startup (main window shown, then quit)
# Prints the time of each phase and exits non-zero on the first failure.
#
#   packaging/ci_linux.sh            # PYTHON=.venv/bin/python by default
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
export PYTHON
SHARED="$REPO/../shared"
MODEL="$SHARED/models/dinov2-small-imgfocus"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vitfeat-ci.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export VITFEAT_HOME="$WORK/home" QT_QPA_PLATFORM=offscreen VITFEAT_OFFLINE=1

phase() { PHASE_NAME="$1"; PHASE_START=$SECONDS; echo "== $1"; }
done_phase() { echo "== $PHASE_NAME: $((SECONDS - PHASE_START)) s"; }
SECONDS=0

phase "build (bundle, .deb, tar.gz)"
"$REPO/packaging/build_linux.sh"
done_phase

phase "install the .deb into $WORK/root"
DEB="$(ls "$REPO"/packaging/out/vitfeat-desktop_*.deb)"
dpkg-deb -x "$DEB" "$WORK/root"
# /usr/bin's links are absolute (/opt/...): re-point them into the throw-away root, still as symlinks.
BIN="$WORK/bin"
mkdir -p "$BIN"
for exe in vitfeat-desktop vitfeat; do
    target="$(readlink "$WORK/root/usr/bin/$exe")"
    [[ "$target" == "/opt/vitfeat-desktop/$exe" ]] || { echo "bad /usr/bin/$exe -> $target" >&2; exit 1; }
    ln -s "$WORK/root$target" "$BIN/$exe"
done
test -x "$BIN/vitfeat-desktop" && test -x "$BIN/vitfeat"
test -f "$WORK/root/usr/share/applications/vitfeat-desktop.desktop"
echo "installed size: $(du -sh "$WORK/root/opt/vitfeat-desktop" | cut -f1), .deb: $(du -h "$DEB" | cut -f1)"
done_phase

phase "installed self-test (generated tiny ViT, as on the release runners)"
"$BIN/vitfeat-desktop" --self-test --verbose
done_phase

model_args=()
[[ -f "$MODEL/onnx/model_quantized.onnx" ]] && model_args=(--model "$MODEL")
if [[ ${#model_args[@]} -gt 0 ]]; then
    phase "installed self-test with the real model"
    "$BIN/vitfeat-desktop" --self-test "${model_args[@]}" --only model,library,window
    done_phase
fi

phase "installed vitfeat extract"
photos=("$SHARED"/data/photos/*.JPEG)
photo="${photos[0]}"
if [[ ! -f "$photo" ]]; then
    photo="$WORK/photo.jpg"
    "$PYTHON" -c "from vitfeat_desktop.selftest.fixtures import synthetic_photo; synthetic_photo(3).save('$photo')"
fi
if [[ ${#model_args[@]} -gt 0 ]]; then
    "$BIN/vitfeat" extract "${model_args[@]}" --pool "$photo"
else
    "$PYTHON" -c "from vitfeat_desktop.selftest.tinyvit import write_model_folder as w; w('$WORK/tiny')"
    "$BIN/vitfeat" extract --model "$WORK/tiny" --pool "$photo"
fi
done_phase

phase "cold start to main window (installed)"
"$BIN/vitfeat-desktop" --self-test --startup
done_phase

echo "ci_linux: all passed in ${SECONDS} s"
