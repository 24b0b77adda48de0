"""Installers: lint every recipe here (spec, .iss, Info.plist, .desktop, workflow, icons) and, marked slow,
build the Linux bundle + .deb + tar.gz, install the .deb into a throw-away root and run what it installed.

Fast tests run with the default suite. The full build: ``pytest -m slow tests/packaging/test_packaging.py`` (about 2
minutes on an idle 2-core machine); ``VITFEAT_REUSE_BUNDLE=1`` repackages an existing PyInstaller bundle.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tarfile
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers.photos import REPO
from PIL import Image

PACKAGING = REPO / "packaging"
RESOURCES = REPO / "resources"
SPEC = PACKAGING / "vitfeat.spec"
ISS = PACKAGING / "windows" / "vitfeat.iss"
PLIST = PACKAGING / "macos" / "Info.plist"
DESKTOP = RESOURCES / "vitfeat-desktop.desktop"
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
SHARED_MODEL = REPO.parent / "shared" / "models" / "dinov2-small-imgfocus"
PHOTOS = REPO.parent / "shared" / "data" / "photos"


def _load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_icon = _load(RESOURCES / "make_icon.py", "vitfeat_make_icon")


# ---------------------------------------------------------------------------------------------------------
# The PyInstaller spec, executed with stand-ins for PyInstaller's build classes
# ---------------------------------------------------------------------------------------------------------
SAMPLE_BINARIES = [
    "PySide6/Qt/lib/libQt6Core.so.6",
    "PySide6/Qt/lib/libQt6Widgets.so.6",
    "PySide6/Qt/lib/libQt6Quick.so.6",
    "PySide6/Qt/lib/libQt6Qml.so.6",
    "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
    "PySide6/Qt/lib/libQt6Pdf.so.6",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/imageformats/libqjpeg.so",
    "PySide6/Qt/plugins/imageformats/libqpdf.so",
    "PySide6/Qt/plugins/qmltooling/libqmldbg_debugger.so",
    "PySide6/Qt/plugins/sqldrivers/libqsqlite.so",
    "PySide6\\Qt6Quick.dll",
    "PySide6\\plugins\\platforms\\qwindows.dll",
    "onnxruntime/capi/libonnxruntime.so.1.32.0",
    "onnxruntime/capi/libonnxruntime_providers_shared.so",
    "onnxruntime/capi/libonnxruntime_providers_cuda.so",
    "onnxruntime/capi/libonnxruntime_providers_tensorrt.so",
    "onnxruntime\\capi\\onnxruntime_providers_openvino.dll",
    "hnswlib.cpython-311-x86_64-linux-gnu.so",
]
KEEP = {
    "PySide6/Qt/lib/libQt6Core.so.6", "PySide6/Qt/lib/libQt6Widgets.so.6", "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so", "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/imageformats/libqjpeg.so", "PySide6\\plugins\\platforms\\qwindows.dll",
    "onnxruntime/capi/libonnxruntime.so.1.32.0", "onnxruntime/capi/libonnxruntime_providers_shared.so",
    "hnswlib.cpython-311-x86_64-linux-gnu.so",
}
SAMPLE_DATAS = [
    "PySide6/Qt/translations/qtbase_de.qm",
    "PySide6/Qt/translations/qtdeclarative_de.qm",
    "PySide6/Qt/translations/qtwebengine_de.qm",
    "PySide6/Qt/resources/qtwebengine_resources.pak",
    "vitfeat_desktop/gui/style.qss",
]


class _Recorder:
    made: ClassVar[list[Any]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.name = kwargs.get("name")
        _Recorder.made.append(self)


class _Analysis(_Recorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.binaries = [(name, "/src/" + name, "BINARY") for name in SAMPLE_BINARIES]
        self.datas = [(name, "/src/" + name, "DATA") for name in SAMPLE_DATAS]
        self.pure: list[Any] = []
        self.scripts: list[Any] = []


class _EXE(_Recorder):
    pass


class _COLLECT(_Recorder):
    pass


class _BUNDLE(_Recorder):
    pass


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Execute the spec the way PyInstaller does (globals SPECPATH, Analysis, EXE ...) with recorders."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed")
    _Recorder.made = []
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = lambda name, filter=None, **kw: [f"{name}.fake_submodule"]  # type: ignore[attr-defined]
    hooks.collect_data_files = lambda name, **kw: []  # type: ignore[attr-defined]
    saved = sys.modules.get("PyInstaller.utils.hooks")
    sys.modules["PyInstaller.utils.hooks"] = hooks
    namespace: dict[str, Any] = {
        "__name__": "__main__", "SPECPATH": str(PACKAGING), "Analysis": _Analysis, "PYZ": _Recorder,
        "EXE": _EXE, "COLLECT": _COLLECT, "BUNDLE": _BUNDLE,
        "workpath": str(tmp_path_factory.mktemp("spec-work")), "DISTPATH": str(tmp_path_factory.mktemp("dist")),
    }
    try:
        exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    finally:
        if saved is not None:
            sys.modules["PyInstaller.utils.hooks"] = saved
        else:
            sys.modules.pop("PyInstaller.utils.hooks", None)
    return {"ns": namespace, "made": list(_Recorder.made)}


def _of(run: dict[str, Any], cls: type) -> list[Any]:
    return [m for m in run["made"] if type(m) is cls]


def test_spec_makes_two_executables_in_one_folder(spec_run: dict[str, Any]) -> None:
    exes = _of(spec_run, _EXE)
    assert [(e.name, e.kwargs["console"]) for e in exes] == [("vitfeat-desktop", False), ("vitfeat", True)]
    assert all(e.kwargs["exclude_binaries"] for e in exes)  # one-folder: libraries go to COLLECT
    (coll,) = _of(spec_run, _COLLECT)
    assert coll.args[0] is exes[0] and coll.args[1] is exes[1]  # the GUI first: the .app's executable
    assert coll.name == "vitfeat-desktop"


def test_spec_analyses_the_shared_entry_point(spec_run: dict[str, Any]) -> None:
    (analysis,) = _of(spec_run, _Analysis)
    (script,) = analysis.args[0]
    assert Path(script) == PACKAGING / "vitfeat_entry.py"
    hidden = analysis.kwargs["hiddenimports"]
    # command modules are imported by name, the graph optimizer imports its parts as top-level modules
    assert "vitfeat_desktop.fake_submodule" in hidden
    for module in ("onnxruntime.quantization.fake_submodule", "pi_heif", "certifi", "rawpy", "hnswlib"):
        assert module in hidden, module
    excludes = set(analysis.kwargs["excludes"])
    assert "pillow_heif" in excludes  # its wheels carry the GPL x265 encoder
    for module in ("PySide6.QtWebEngineCore", "PySide6.Qt3DCore", "PySide6.QtQuick", "PySide6.QtQml",
                   "PySide6.QtMultimedia", "transformers", "torch", "scipy", "tkinter", "sympy"):
        assert module in excludes, module
    assert not excludes & {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "onnx", "onnxruntime"}


def test_spec_drops_unused_qt_parts_and_gpu_providers(spec_run: dict[str, Any]) -> None:
    (analysis,) = _of(spec_run, _Analysis)
    kept = {b[0] for b in analysis.binaries}
    assert kept == KEEP, sorted(kept ^ KEEP)
    datas = {d[0] for d in analysis.datas}
    assert "PySide6/Qt/translations/qtbase_de.qm" in datas and "vitfeat_desktop/gui/style.qss" in datas
    assert not any("webengine" in d or "qtdeclarative" in d for d in datas)
    assert any(dest == "resources" and src.endswith("icon.png") for src, dest in analysis.kwargs["datas"])
    # the third-party notices travel with every bundle, generated from the build environment
    (notices,) = [src for src, dest in analysis.kwargs["datas"] if src.endswith("THIRD-PARTY-NOTICES.txt")]
    text = Path(notices).read_text(encoding="utf-8")
    assert "Qt 6 (LGPL-3.0)" in text and "GNU LESSER GENERAL PUBLIC LICENSE" in text


def test_spec_uses_the_generated_icons(spec_run: dict[str, Any]) -> None:
    icon = spec_run["ns"]["icon"]
    if sys.platform == "win32":
        assert icon.endswith(f"{make_icon.APP_ID}.ico")
    elif sys.platform == "darwin":
        assert icon.endswith(f"{make_icon.APP_ID}.icns")
    else:
        assert icon is None  # the .deb installs hicolor PNGs instead


# ---------------------------------------------------------------------------------------------------------
# The entry script's personality
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv0", "executable", "expected"), [
    ("/opt/vitfeat-desktop/vitfeat", "/opt/vitfeat-desktop/vitfeat", "vitfeat"),
    ("/usr/bin/vitfeat", "/opt/vitfeat-desktop/vitfeat-desktop", "vitfeat"),  # symlink to the other exe
    ("vitfeat.exe", "vitfeat.exe", "vitfeat"),
    ("vitfeat-desktop", "/x/vitfeat-desktop", "vitfeat-desktop"),
    ("/Applications/vitfeat desktop.app/Contents/MacOS/vitfeat-desktop", "", "vitfeat-desktop"),
    ("something-else", "/usr/bin/python3", "vitfeat-desktop"),
])
def test_entry_point_picks_personality(monkeypatch: pytest.MonkeyPatch, argv0: str, executable: str,
                                       expected: str) -> None:
    entry = _load(PACKAGING / "vitfeat_entry.py", "vitfeat_entry_under_test")
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(sys, "executable", executable)
    assert entry._invoked_as() == expected


def test_entry_point_runs_the_self_test_for_either_name(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    entry = _load(PACKAGING / "vitfeat_entry.py", "vitfeat_entry_under_test2")
    monkeypatch.setattr(sys, "argv", ["/opt/x/vitfeat", "--self-test", "--only", "python"])
    assert entry._main() == 0
    assert "ok   python:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# Windows: Inno Setup script
# ---------------------------------------------------------------------------------------------------------
def _iss_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in ISS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        match = re.fullmatch(r"\[(\w+)\]", line)
        if match:
            current = match.group(1)
            sections.setdefault(current, [])
        elif current:
            sections[current].append(line)
    return sections


def test_iss_is_per_user_with_shortcut_and_uninstaller() -> None:
    sections = _iss_sections()
    for name in ("Setup", "Files", "Icons", "Registry", "Run", "Code"):
        assert name in sections, name
    setup = dict(line.split("=", 1) for line in sections["Setup"])
    assert setup["PrivilegesRequired"] == "lowest"
    assert setup["DefaultDirName"].startswith("{autopf}")  # per-user: %LOCALAPPDATA%\Programs without admin
    assert setup["ChangesAssociations"] == "yes"
    assert setup["UninstallDisplayIcon"] == "{app}\\{#AppExe}"
    assert re.fullmatch(r"\{\{[0-9A-F-]{36}\}", setup["AppId"])
    assert setup.get("Uninstallable", "yes") == "yes"
    assert any(line.startswith('Name: "{autoprograms}\\{#AppName}"') for line in sections["Icons"])
    (files,) = sections["Files"]
    assert 'Source: "{#BundleDir}\\*"' in files and "recursesubdirs" in files


def _iss_defines() -> dict[str, str]:
    return dict(re.findall(r'#define (\w+) "([^"]*)"', ISS.read_text(encoding="utf-8")))


def test_iss_registers_open_with_only_under_hkcu() -> None:
    defines = _iss_defines()
    registry = [re.sub(r"\{#(\w+)\}", lambda m: defines.get(m.group(1), m.group(0)), line)
                for line in _iss_sections()["Registry"]]
    assert registry and all(line.startswith("Root: HKCU;") for line in registry)
    text = "\n".join(registry)
    assert "Software\\Classes\\Applications\\vitfeat-desktop.exe\\shell\\open\\command" in text
    assert "Software\\Classes\\Directory\\shell\\vitfeat-desktop\\command" in text
    for ext in (".jpg", ".jpeg", ".png", ".heic", ".dng", ".webp"):
        assert f"Software\\Classes\\{ext}\\OpenWithProgids" in text, ext
    # everything we add is removed again by the uninstaller
    for line in registry:
        key = re.search(r'Subkey: "([^"]+)"', line)
        assert key is not None
        if "OpenWithProgids" in line:
            assert "uninsdeletevalue" in line
    roots = {re.search(r'Subkey: "([^"]+)"', line).group(1).split("\\")[2]  # type: ignore[union-attr]
             for line in registry if "uninsdeletekey" in line}
    assert {"Applications", "vitfeat-desktop.Image", "Directory"} <= roots


def test_iss_names_the_executables_the_spec_builds(spec_run: dict[str, Any]) -> None:
    defines = _iss_defines()
    names = {e.name for e in _of(spec_run, _EXE)}
    assert defines["AppExe"].removesuffix(".exe") in names
    assert defines["CliExe"].removesuffix(".exe") in names
    assert defines["BundleDir"].endswith("dist\\" + _of(spec_run, _COLLECT)[0].name)
    assert defines["IconFile"].endswith(make_icon.APP_ID + ".ico")
    ps1 = (PACKAGING / "build_windows.ps1").read_text(encoding="utf-8")
    assert "/DBundleDir=" in ps1 and "vitfeat.iss" in ps1 and "packaging\\vitfeat.spec" in ps1


# ---------------------------------------------------------------------------------------------------------
# macOS: Info.plist
# ---------------------------------------------------------------------------------------------------------
def test_info_plist(spec_run: dict[str, Any]) -> None:
    info = plistlib.loads(PLIST.read_bytes())
    assert info["NSHighResolutionCapable"] is True
    assert info["CFBundlePackageType"] == "APPL"
    assert info["CFBundleExecutable"] == _of(spec_run, _EXE)[0].name
    assert info["CFBundleIconFile"] == f"{make_icon.APP_ID}.icns"
    types_ = {t for doc in info["CFBundleDocumentTypes"] for t in doc["LSItemContentTypes"]}
    assert {"public.jpeg", "public.png", "public.heic", "public.camera-raw-image", "public.folder"} <= types_
    assert all(doc["CFBundleTypeRole"] == "Viewer" for doc in info["CFBundleDocumentTypes"])
    script = (PACKAGING / "macos" / "build_macos.sh").read_text(encoding="utf-8")
    assert "hdiutil create" in script and "packaging/vitfeat.spec" in script


# ---------------------------------------------------------------------------------------------------------
# Linux: .desktop entry, shell scripts
# ---------------------------------------------------------------------------------------------------------
def test_desktop_entry() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "vitfeat-desktop" and entry["Exec"].split()[1] in ("%f", "%F")
    assert entry["Icon"] == make_icon.APP_ID
    assert entry["Terminal"] == "false"
    mimes = entry["MimeType"].split(";")
    assert mimes[-1] == ""  # the list must end with ';'
    assert {"inode/directory", "image/jpeg", "image/png", "image/heic", "image/webp", "image/x-adobe-dng"} <= set(mimes)
    assert entry["Categories"].endswith(";")


def test_desktop_entry_validates() -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate (desktop-file-utils) is not installed")
    result = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("script", ["build_linux.sh", "ci_linux.sh", "macos/build_macos.sh"])
def test_shell_scripts_parse(script: str) -> None:
    path = PACKAGING / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.skip("shellcheck is not installed")
    scripts = [str(PACKAGING / s) for s in ("build_linux.sh", "ci_linux.sh", "macos/build_macos.sh")]
    result = subprocess.run([tool, *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_release_workflow() -> None:
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    jobs = flow["jobs"]
    oses = [m["os"] for m in jobs["build"]["strategy"]["matrix"]["include"]]
    assert any(o.startswith("windows") for o in oses)
    assert any(o.startswith("macos") for o in oses)
    assert jobs["linux-x64"]["container"] == "almalinux:9"  # glibc 2.34, the oldest base the wheels allow
    assert jobs["linux-x64-install"]["runs-on"] == "ubuntu-22.04"
    steps = [step for job in jobs.values() for step in job["steps"]]
    runs = "\n".join(step.get("run", "") for step in steps).replace("\\\n", " ")  # join continued lines
    for needed in ("packaging/build_linux.sh", "packaging/build_windows.ps1", "packaging/macos/build_macos.sh",
                   "/usr/bin/vitfeat-desktop --self-test", "vitfeat.exe\" --self-test", "Contents/MacOS/vitfeat\" "
                   "--self-test", "mcr.microsoft.com/windows/servercore", "sha256sum -c", "SHA256SUMS"):
        assert needed in runs, needed
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    # hnswlib is built portable on every path, never from a cached native wheel, and everything else is pinned
    assert flow["env"]["HNSWLIB_NO_NATIVE"] == "1"
    installs = [line for line in runs.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c " in line for line in installs), installs
    assert all("--no-cache-dir" in line for line in installs if line.rstrip().endswith("hnswlib"))
    assert any("--only-binary=:all:" in line for line in installs)
    cache_keys = [str(s.get("with", {}).get("key", "")) + str(s.get("with", {}).get("cache-dependency-path", ""))
                  for s in steps if s.get("uses", "").startswith(("actions/cache", "actions/setup-python"))]
    assert cache_keys and all("constraints" in key for key in cache_keys), cache_keys


def test_ci_builds_hnswlib_portable() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "export HNSWLIB_NO_NATIVE=1" in script
    assert script.index("HNSWLIB_NO_NATIVE=1") < script.index('pip install -q -e ".[dev]"')
    assert "--no-cache-dir --no-binary hnswlib" in script


# ---------------------------------------------------------------------------------------------------------
# Icons
# ---------------------------------------------------------------------------------------------------------
def test_icons_for_every_platform(tmp_path: Path) -> None:
    written = make_icon.write_all(tmp_path)
    with Image.open(written["png"]) as png:
        assert png.size == (1024, 1024) and png.mode == "RGBA"
        # corners transparent (rounded square), centre opaque and not flat
        assert png.getpixel((2, 2))[3] == 0 and png.getpixel((512, 512))[3] == 255
        extrema = png.convert("L").getextrema()
        assert extrema[1] - extrema[0] > 150
    with Image.open(written["ico"]) as ico:
        assert {(n, n) for n in make_icon.ICO_SIZES} <= set(ico.info["sizes"])
    with Image.open(written["icns"]) as icns:
        assert icns.format == "ICNS"
        assert (512, 512) in {s[:2] for s in icns.info["sizes"]}
    for n in make_icon.HICOLOR_SIZES:
        with Image.open(tmp_path / "hicolor" / f"{n}x{n}" / "apps" / f"{make_icon.APP_ID}.png") as im:
            assert im.size == (n, n)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total < 2_000_000


def test_committed_icon_is_the_generated_one() -> None:
    with Image.open(RESOURCES / "icon.png") as committed:
        assert committed.size == (1024, 1024)
        ours = make_icon.draw_icon(1024)
        diff = sum(abs(a - b) for a, b in zip(committed.convert("RGBA").resize((64, 64)).tobytes(),
                                                ours.resize((64, 64)).tobytes(), strict=True))
        assert diff / (64 * 64 * 4) < 2.0, "resources/icon.png is stale: run python resources/make_icon.py --png-only"


# ---------------------------------------------------------------------------------------------------------
# The real build (slow): bundle + .deb + tar.gz, installed into a throw-away root and run
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built() -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not available")
    env = dict(os.environ, PYTHON=sys.executable)
    if os.environ.get("VITFEAT_REUSE_BUNDLE") and (PACKAGING / "out" / "dist" / "vitfeat-desktop").is_dir():
        env["SKIP_PYINSTALLER"] = "1"
    result = subprocess.run([str(PACKAGING / "build_linux.sh")], env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return PACKAGING / "out"


@pytest.fixture(scope="module")
def installed(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (deb,) = built.glob("vitfeat-desktop_*.deb")
    root = tmp_path_factory.mktemp("deb-root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _command(root: Path, name: str) -> Path:
    """``/usr/bin/<name>`` of the extracted package, re-pointed into the throw-away root.

    The package's links are absolute (``/opt/vitfeat-desktop/...``), so an equivalent link is made next to the
    root: the bundle is still started through a symlink, exactly as from ``/usr/bin`` once installed.
    """
    target = os.readlink(root / "usr" / "bin" / name)
    assert target.startswith("/opt/vitfeat-desktop/"), target
    link = root.parent / f"{root.name}-bin" / name
    link.parent.mkdir(exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(root / target.lstrip("/"))
    return link


def _run_installed(root: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VITFEAT_HOME=str(home), QT_QPA_PLATFORM="offscreen", VITFEAT_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(_command(root, args[0])), *args[1:]], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)


@pytest.mark.slow
def test_deb_layout(built: Path, installed: Path) -> None:
    (deb,) = built.glob("vitfeat-desktop_*.deb")
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: vitfeat-desktop" in info and "Depends:" in info
    for exe in ("vitfeat-desktop", "vitfeat"):
        link = installed / "usr" / "bin" / exe
        assert link.is_symlink() and os.readlink(link) == f"/opt/vitfeat-desktop/{exe}"
        assert os.access(installed / "opt" / "vitfeat-desktop" / exe, os.X_OK)
    assert (installed / "usr" / "share" / "doc" / "vitfeat-desktop" / "copyright").is_file()
    assert (installed / "usr" / "share" / "applications" / "vitfeat-desktop.desktop").is_file()
    for n in make_icon.HICOLOR_SIZES:
        assert (installed / "usr/share/icons/hicolor" / f"{n}x{n}" / "apps/vitfeat-desktop.png").is_file()
    # PyInstaller links some libraries into place: count each file once, as du does
    size = sum(p.lstat().st_size for p in (installed / "opt" / "vitfeat-desktop").rglob("*")
               if p.is_file() and not p.is_symlink())
    assert size < 400 * 1024 * 1024, f"bundle is {size / 2**20:.0f} MiB"
    # no Qt module we excluded slipped in
    names = {p.name for p in (installed / "opt" / "vitfeat-desktop").rglob("*")}
    assert not any(re.search(r"Qt6(WebEngine|Quick|Qml|3D|Multimedia|Pdf)", n) for n in names)
    with tarfile.open(next(built.glob("vitfeat-desktop-*-linux-*.tar.gz"))) as tar:
        members = set(tar.getnames())
    assert {"vitfeat-desktop/vitfeat-desktop", "vitfeat-desktop/vitfeat",
            "vitfeat-desktop/share/vitfeat-desktop.desktop"} <= members


@pytest.mark.slow
def test_installed_self_test(installed: Path, tmp_path: Path) -> None:
    """The default self-test (generated, quantized tiny ViT): what the release workflow runs on every OS."""
    result = _run_installed(installed, "vitfeat-desktop", "--self-test", "--verbose", home=tmp_path / "home")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "(frozen bundle)" in out and "FAIL" not in out
    for name in ("onnxruntime", "onnx", "hnswlib", "pillow", "heic", "raw", "qt", "model", "library", "window"):
        assert f"ok   {name}:" in out, name
    assert "icon: resources/icon.png" in out  # the spec ships the generated icon where gui/app.py looks
    assert not any((tmp_path / "home").glob("*")), "the self-test wrote into the user's data dir"


@pytest.mark.slow
def test_installed_self_test_with_real_model(installed: Path, tmp_path: Path) -> None:
    if not (SHARED_MODEL / "onnx" / "model_quantized.onnx").is_file():
        pytest.skip("the shared model is not available")
    result = _run_installed(installed, "vitfeat-desktop", "--self-test", "--model", str(SHARED_MODEL),
                            "--only", "model,library,window", home=tmp_path / "home")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "embed (3, 384)" in out and "hidden (1, 257, 384)" in out
    assert "ok   library:" in out and "photo_00_copy.jpg" in out
    assert "ok   window:" in out


@pytest.mark.slow
def test_installed_cli_extracts_a_photo(installed: Path, tmp_path: Path) -> None:
    photos = sorted(PHOTOS.glob("*.JPEG"))
    if not photos or not SHARED_MODEL.is_dir():
        pytest.skip("the shared model or photos are not available")
    npy = tmp_path / "out.npy"
    result = _run_installed(installed, "vitfeat", "extract", "--model", str(SHARED_MODEL), "--pool",
                            "--out", str(npy), str(photos[0]), home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    import numpy as np

    vector = np.load(npy)
    assert vector.shape == (1, 384) and np.isfinite(vector).all()
    # the same numbers as the source install computes
    from vitfeat_desktop import pipeline

    extractor = pipeline("image-feature-extraction", model=SHARED_MODEL)
    expected = extractor([str(photos[0])], pool=True)
    assert np.allclose(vector, expected, atol=1e-4)


@pytest.mark.slow
def test_installed_app_starts(installed: Path, tmp_path: Path) -> None:
    result = _run_installed(installed, "vitfeat-desktop", "--self-test", "--startup", home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   startup: window shown" in result.stdout


@pytest.mark.slow
def test_installed_app_starts_on_x11(installed: Path, tmp_path: Path) -> None:
    """The xcb platform plugin and everything it links load from the bundle on a real X server."""
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run (xvfb) is not installed")
    env = dict(os.environ, VITFEAT_HOME=str(tmp_path / "home"), VITFEAT_OFFLINE="1")
    env.pop("QT_QPA_PLATFORM", None)
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24",
                             str(_command(installed, "vitfeat-desktop")), "--self-test", "--startup",
                             "--platform", "xcb"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   startup: window shown" in result.stdout


def test_the_readmes_python_examples_import_what_they_name() -> None:
    """The README's API examples are what a newcomer copies first: every import in them must work (a module
    move once left ``finder_for_library`` imported from a module that no longer defines it)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks
    checked = 0
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"README: {node.module} has no {alias.name}"
                    checked += 1
    assert checked >= 3
