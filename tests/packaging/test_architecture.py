"""The core must stay headless: importing it (and the CLI) never loads Qt or the GUI package."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import vitfeat_desktop

PACKAGE_DIR = Path(vitfeat_desktop.__file__).parent


def _headless_modules() -> list[str]:
    names = ["vitfeat_desktop", "vitfeat_desktop.cli", "vitfeat_desktop.config"]
    for sub in ("core", "commands"):
        for info in pkgutil.iter_modules([str(PACKAGE_DIR / sub)]):
            names.append(f"vitfeat_desktop.{sub}.{info.name}")
    return names


def test_core_and_cli_never_import_qt() -> None:
    modules = _headless_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from vitfeat_desktop.cli import build_parser\n"
        "build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'vitfeat_desktop.gui')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"headless modules imported Qt: {result.stdout}"


def test_importing_the_package_is_cheap() -> None:
    """``vitfeat --help`` must be instant: onnxruntime and hnswlib load only when a model or index is used."""
    code = (
        "import sys, vitfeat_desktop.cli\n"
        "vitfeat_desktop.cli.build_parser()\n"
        "print(','.join(m for m in ('onnxruntime', 'hnswlib', 'PySide6') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
