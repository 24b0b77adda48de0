"""Regenerate the release builds' constraints files: one per platform, every package pinned to a version that has
a wheel there (so no release runner ever compiles LibRaw or onnxruntime from source).

    python packaging/constraints/lock.py          # needs pip >= 23 and the network (PyPI metadata only)

For each target it asks pip to resolve pyproject.toml's dependencies plus PyInstaller for that platform with
``--only-binary=:all:`` (``pip install --dry-run --report``: wheel metadata only, nothing is installed) and
writes ``release-<target>.txt``. hnswlib is the one package built from source everywhere (it publishes no
wheels); it is pinned and built with HNSWLIB_NO_NATIVE=1 (see .github/workflows/release.yml).

Why per platform: the newest rawpy and onnxruntime have no macOS x86_64 wheels (rawpy stops at 0.25.1,
onnxruntime at 1.23.2), so one shared pin set would either drop Intel Macs or hold every other platform back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON_VERSION = "3.11"
# target -> pip --platform tags (all that the build machine's pip may take: manylinux tags do not expand)
TARGETS = {
    "linux-x86_64": [f"manylinux_2_{v}_x86_64" for v in (34, 31, 28, 27, 17)] + ["manylinux2014_x86_64"],
    "windows-x86_64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64"],
    "macos-x86_64": ["macosx_13_0_x86_64"],  # the last onnxruntime for Intel Macs needs 13.0
}
BUILD_TOOLS = ["pyinstaller", "pyinstaller-hooks-contrib"]
FROM_SOURCE = {"hnswlib": "0.8.0"}


def resolve(platforms: list[str], requirements: list[str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--target", str(Path(tmp) / "t"), "--report", str(report),
               "--quiet"]
        for platform in platforms:
            cmd += ["--platform", platform]
        subprocess.run(cmd + requirements, check=True)
        data = json.loads(report.read_text(encoding="utf-8"))
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in data["install"]}


def main() -> int:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [r for r in project["dependencies"] if not r.lower().startswith(tuple(FROM_SOURCE))]
    for target, platforms in TARGETS.items():
        pins = resolve(platforms, requirements + BUILD_TOOLS)
        pins.update(FROM_SOURCE)
        lines = [f"# Release build constraints for {target}, Python {PYTHON_VERSION}: written by "
                 "packaging/constraints/lock.py, do not edit by hand.",
                 "# hnswlib is built from source with HNSWLIB_NO_NATIVE=1 (portable, x86-64 baseline); every "
                 "other package is a wheel (--only-binary=:all:).",
                 "# Not pinned: dependencies behind markers of another OS (PyInstaller's pefile/pywin32-ctypes on "
                 "Windows, macholib on macOS): pip evaluates markers for the machine lock.py runs on."]
        lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
        out = HERE / f"release-{target}.txt"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{out.name}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
