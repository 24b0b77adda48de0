"""packaging/check_bundle.py: each check must fail on the bundle that would break on a user's machine.

Real binaries where this machine can make them (gcc-compiled libraries with and without AVX/AVX-512, this
Python's own ELF files, a .deb built with dpkg-deb); byte-exact synthetic Mach-O and PE files for the macOS and
Windows checks, which only the release runners can run on real bundles.
"""

from __future__ import annotations

import importlib.util
import platform
import plistlib
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest
from helpers.photos import REPO


def _load() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("check_bundle", REPO / "packaging" / "check_bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cb = _load()
X86 = platform.machine().lower() in ("x86_64", "amd64")

# -- isa -------------------------------------------------------------------------------------------------------

LOOP = "void axpy(float *restrict y, const float *restrict x, float a, int n) { for (int i = 0; i < n; i++) " \
       "y[i] += a * x[i]; }\n"


def _compile(tmp_path: Path, name: str, *flags: str) -> Path:
    src = tmp_path / "axpy.c"
    src.write_text(LOOP)
    out = tmp_path / f"lib{name}.so"
    subprocess.run(["gcc", "-O3", "-shared", "-fPIC", *flags, str(src), "-o", str(out)], check=True)
    return out


needs_toolchain = pytest.mark.skipif(not (X86 and shutil.which("gcc") and shutil.which("objdump")),
                                     reason="needs gcc and objdump on x86-64")


@needs_toolchain
@pytest.mark.parametrize(("flags", "level"), [
    ((), "x86-64"),
    (("-msse4.2", "-mpopcnt"), None),  # may or may not use SSE4 for this loop: at most v2
    (("-mavx2", "-mfma"), "x86-64-v3"),
    (("-mavx512f", "-mprefer-vector-width=512"), "x86-64-v4"),
])
def test_isa_finds_the_level_a_library_needs(tmp_path: Path, flags: tuple[str, ...], level: str | None) -> None:
    lib = _compile(tmp_path, "x", *flags)
    ok, detail = cb.isa_report(lib, "x86-64")
    found = re.search(r"needs (x86-64(?:-v\d)?)", detail)
    assert found, detail
    if level is None:
        assert found.group(1) in ("x86-64", "x86-64-v2"), detail
    else:
        assert found.group(1) == level, detail
        assert ok is (level == "x86-64")


@needs_toolchain
def test_isa_command_fails_the_build_on_a_native_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    native = _compile(tmp_path, "n", "-mavx512f", "-mprefer-vector-width=512")
    shutil.copy(native, bundle / "hnswlib.cpython-311-x86_64-linux-gnu.so")
    assert cb.main(["isa", "--bundle", str(bundle)]) == 1
    assert "x86-64-v4" in capsys.readouterr().out
    shutil.copy(_compile(tmp_path, "p"), bundle / "hnswlib.cpython-311-x86_64-linux-gnu.so")
    assert cb.main(["isa", "--bundle", str(bundle)]) == 0
    assert cb.main(["isa", "--bundle", str(tmp_path / "empty")]) == 1  # no hnswlib at all is a failure too


def test_isa_classifies_instructions() -> None:
    assert cb.x86_level("vaddps", "%zmm1,%zmm2,%zmm3") == 3
    assert cb.x86_level("kmovw", "%k1,%eax") == 3
    assert cb.x86_level("vmovups", "(%rax),%ymm0") == 2
    assert cb.x86_level("vaddss", "%xmm1,%xmm2,%xmm3") == 2  # VEX-encoded even on xmm: needs AVX
    assert cb.x86_level("shlx", "%rax,%rbx,%rcx") == 2
    assert cb.x86_level("pshufb", "%xmm1,%xmm0") == 1
    assert cb.x86_level("popcnt", "%rax,%rbx") == 1
    assert cb.x86_level("tzcnt", "%rax,%rbx") == 0  # rep bsf: runs everywhere
    assert cb.x86_level("mulps", "%xmm1,%xmm0") == 0
    assert cb.x86_level("verw", "%ax") == 0


# -- glibc -----------------------------------------------------------------------------------------------------

def _objdump_glibc(path: Path) -> str:
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
    versions = re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


def _elf_samples() -> list[Path]:
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    candidates = [Path(sys.executable).resolve(), *sorted(libdir.glob("libpython3*.so.1.0"))]
    import _ssl

    import numpy

    candidates += [Path(_ssl.__file__), *sorted(Path(numpy.__file__).parent.rglob("_multiarray_umath*.so"))]
    return [p for p in candidates if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("objdump"), reason="needs Linux and objdump")
def test_glibc_versions_match_objdump(tmp_path: Path) -> None:
    samples = _elf_samples()
    assert samples
    for path in samples:
        needs = cb.elf_version_needs(path)
        ours = max((v[6:] for vs in needs.values() for v in vs if v.startswith("GLIBC_") and v[6:7].isdigit()),
                   key=lambda v: tuple(int(x) for x in v.split(".")))
        assert ours == _objdump_glibc(path), path
    bundle = tmp_path / "b"
    bundle.mkdir()
    for i, path in enumerate(samples):
        shutil.copy(path, bundle / f"{i}-{path.name}")
    (bundle / "notes.txt").write_text("not an ELF file")
    need, who = cb.glibc_requirement(bundle)
    assert need == max((_objdump_glibc(p) for p in samples), key=lambda v: tuple(int(x) for x in v.split(".")))
    assert who


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("dpkg-deb"), reason="needs dpkg-deb")
def test_glibc_check_fails_when_the_deb_declares_another_libc(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(_elf_samples()[0], bundle / "lib.so")
    need = cb.glibc_requirement(bundle)[0]

    def deb(declared: str) -> Path:
        root = tmp_path / f"root-{declared}"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: t\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDepends: libc6 (>= {declared}), libgl1\n"
            "Description: t\n")
        out = tmp_path / f"t-{declared}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True,
                       capture_output=True)
        return out

    assert cb.main(["glibc", "--bundle", str(bundle), "--deb", str(deb(need))]) == 0
    assert cb.main(["glibc", "--bundle", str(bundle), "--deb", str(deb("2.17"))]) == 1
    assert cb.covered_distributions("2.34")[0] == "RHEL/Alma/Rocky 9"
    assert "Ubuntu 22.04" not in cb.covered_distributions("2.36")


def test_build_linux_derives_the_libc_dependency() -> None:
    script = (REPO / "packaging" / "build_linux.sh").read_text(encoding="utf-8")
    assert "Depends: libc6 (>= $LIBC_MIN)" in script and "libc6 (>= 2." not in script
    assert re.search(r'LIBC_MIN="\$\("\$\{CHECK\[@\]\}" glibc --bundle "\$BUNDLE" --print\)"', script)
    assert '"${CHECK[@]}" glibc --bundle "$BUNDLE" --deb "$DEB"' in script
    assert '"${CHECK[@]}" isa --bundle "$BUNDLE" --baseline x86-64' in script
    assert "sha256sum" in script


# -- macOS -----------------------------------------------------------------------------------------------------

def _thin(cputype: int, minos: tuple[int, int], legacy: bool = False) -> bytes:
    version = (minos[0] << 16) | (minos[1] << 8)
    if legacy:
        cmd = struct.pack("<IIII", cb.LC_VERSION_MIN_MACOSX, 16, version, version)
    else:
        cmd = struct.pack("<IIIIII", cb.LC_BUILD_VERSION, 24, cb.PLATFORM_MACOS, version, version, 0)
    header = struct.pack("<IiiIIIII", 0xFEEDFACF, cputype, 0, 6, 1, len(cmd), 0, 0)
    return header + cmd


def _fat(*slices: tuple[int, bytes]) -> bytes:
    out = bytearray(struct.pack(">II", 0xCAFEBABE, len(slices)))
    offset = 0x1000
    bodies = []
    for cputype, body in slices:
        out += struct.pack(">iiIII", cputype, 0, offset, len(body), 12)
        bodies.append((offset, body))
        offset += 0x1000
    data = bytearray(offset)
    data[: len(out)] = out
    for at, body in bodies:
        data[at: at + len(body)] = body
    return bytes(data)


ARM64, X86_64 = 0x0100000C, 0x01000007


def test_macho_minimums() -> None:
    assert cb.macho_minimums_from_bytes(_thin(ARM64, (14, 0))) == {"arm64": "14.0"}
    assert cb.macho_minimums_from_bytes(_thin(X86_64, (10, 9), legacy=True)) == {"x86_64": "10.9"}
    fat = _fat((X86_64, _thin(X86_64, (13, 0))), (ARM64, _thin(ARM64, (11, 0))))
    assert cb.macho_minimums_from_bytes(fat) == {"x86_64": "13.0", "arm64": "11.0"}
    assert cb.macho_minimums_from_bytes(b"\xca\xfe\xba\xbe" + b"\0" * 60) == {}  # a Java class file, not Mach-O
    assert cb.macho_minimums_from_bytes(b"#!/bin/sh\n" * 10) == {}


def test_macos_check_derives_and_enforces_the_minimum(tmp_path: Path) -> None:
    app = tmp_path / "vitfeat desktop.app"
    (app / "Contents" / "Frameworks").mkdir(parents=True)
    (app / "Contents" / "MacOS").mkdir()
    with (REPO / "packaging" / "macos" / "Info.plist").open("rb") as fh:
        info = plistlib.load(fh)
    info["LSMinimumSystemVersion"] = "11.0"  # what it said before the check existed
    (app / "Contents" / "Info.plist").write_bytes(plistlib.dumps(info))
    (app / "Contents" / "MacOS" / "vitfeat").write_bytes(_fat((X86_64, _thin(X86_64, (10, 13))),
                                                              (ARM64, _thin(ARM64, (11, 0)))))
    (app / "Contents" / "Frameworks" / "libonnxruntime.dylib").write_bytes(_thin(ARM64, (14, 0)))
    (app / "Contents" / "Frameworks" / "QtCore").write_bytes(_fat((X86_64, _thin(X86_64, (13, 0))),
                                                                  (ARM64, _thin(ARM64, (13, 0)))))
    assert cb.main(["macos", "--app", str(app), "--arch", "arm64"]) == 1  # 11.0 declared, 14.0 needed
    assert cb.main(["macos", "--app", str(app), "--arch", "arm64", "--write"]) == 0
    assert plistlib.loads((app / "Contents" / "Info.plist").read_bytes())["LSMinimumSystemVersion"] == "14.0"
    assert cb.main(["macos", "--app", str(app), "--arch", "x86_64"]) == 1  # the Intel slice needs 13.0
    assert cb.main(["macos", "--app", str(app), "--arch", "x86_64", "--write"]) == 0
    assert cb.main(["macos", "--app", str(app), "--arch", "x86_64"]) == 0


# -- Windows ---------------------------------------------------------------------------------------------------

def _pe(imports: list[str], version: tuple[int, int, int, int] | None = None) -> bytes:
    """A minimal PE32+ image: one section holding the import directory (and a VS_FIXEDFILEINFO if given)."""
    va, raw = 0x1000, 0x200
    names, desc = bytearray(), bytearray()
    name_base = va + 20 * (len(imports) + 1)
    for dll in imports:
        desc += struct.pack("<IIIII", 0, 0, 0, name_base + len(names), 0)
        names += dll.encode() + b"\0"
    desc += b"\0" * 20
    body = bytes(desc + names)
    if version is not None:
        ms, ls = (version[0] << 16) | version[1], (version[2] << 16) | version[3]
        body += b"\0" * 8 + struct.pack("<IIII", 0xFEEF04BD, 0x00010000, ms, ls)
    body += b"\0" * (-len(body) % 0x200)
    opt = bytearray(240)
    struct.pack_into("<H", opt, 0, 0x20B)
    struct.pack_into("<II", opt, 112 + 8, va, 20 * (len(imports) + 1))
    section = struct.pack("<8sIIIIIIHHI", b".idata", len(body), va, len(body), raw, 0, 0, 0, 0, 0)
    head = bytearray(b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40))
    head += b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, len(opt), 0x2022) + opt + section
    head += b"\0" * (raw - len(head))
    return bytes(head) + body


def test_pe_imports_and_version() -> None:
    data = _pe(["KERNEL32.dll", "MSVCP140.dll", "VCRUNTIME140_1.dll"], (14, 38, 33135, 0))
    assert cb.pe_imports_from_bytes(data) == ["KERNEL32.dll", "MSVCP140.dll", "VCRUNTIME140_1.dll"]
    assert cb.pe_file_version_from_bytes(data) == (14, 38, 33135, 0)
    assert cb.pe_imports_from_bytes(b"\x7fELF" + b"\0" * 100) == []


def test_msvc_check_needs_a_recent_bundled_runtime(tmp_path: Path) -> None:
    bundle = tmp_path / "vitfeat-desktop"
    capi = bundle / "_internal" / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    (capi / "onnxruntime.dll").write_bytes(_pe(["KERNEL32.dll", "MSVCP140.dll", "VCRUNTIME140.dll"]))
    (bundle / "_internal" / "hnswlib.cp311-win_amd64.pyd").write_bytes(_pe(["VCOMP140.DLL", "python311.dll"]))
    assert cb.main(["msvc", "--bundle", str(bundle)]) == 1  # nothing bundled: a clean Windows cannot start it
    (bundle / "_internal" / "msvcp140.dll").write_bytes(_pe(["KERNEL32.dll"], (14, 29, 30133, 0)))
    (bundle / "_internal" / "vcruntime140.dll").write_bytes(_pe(["KERNEL32.dll"], (14, 42, 34433, 0)))
    (bundle / "_internal" / "vcomp140.dll").write_bytes(_pe(["KERNEL32.dll"], (14, 42, 34433, 0)))
    assert cb.main(["msvc", "--bundle", str(bundle)]) == 1  # msvcp140 14.29: onnxruntime crashes in std::mutex
    redist = tmp_path / "Redist" / "MSVC" / "14.42.34433" / "x64"
    for sub, name in (("Microsoft.VC143.CRT", "msvcp140.dll"), ("Microsoft.VC143.CRT", "vcruntime140.dll"),
                      ("Microsoft.VC143.OpenMP", "vcomp140.dll")):
        (redist / sub).mkdir(parents=True, exist_ok=True)
        (redist / sub / name).write_bytes(_pe(["KERNEL32.dll"], (14, 42, 34433, 0)))
    assert cb.main(["msvc", "--bundle", str(bundle), "--install-from", str(redist)]) == 0
    assert cb.pe_file_version(capi / "msvcp140.dll") == (14, 42, 34433, 0)  # next to onnxruntime.dll
    assert cb.pe_file_version(bundle / "_internal" / "msvcp140.dll") == (14, 42, 34433, 0)  # old copy replaced


def test_windows_build_installs_and_checks_the_runtime() -> None:
    script = (REPO / "packaging" / "build_windows.ps1").read_text(encoding="utf-8")
    assert "vswhere.exe" in script and '"msvc"' in script and '"--install-from"' in script
    assert "check_bundle.py isa" in script and "check_bundle.py notices" in script
    assert "Get-FileHash -Algorithm SHA256" in script


# -- notices ---------------------------------------------------------------------------------------------------

def test_notices_check(tmp_path: Path) -> None:
    notices = _load_notices()
    bundle = tmp_path / "b"
    (bundle / "_internal").mkdir(parents=True)
    assert cb.main(["notices", "--bundle", str(bundle)]) == 1
    (bundle / "_internal" / "THIRD-PARTY-NOTICES.txt").write_text(notices.render(), encoding="utf-8")
    assert cb.main(["notices", "--bundle", str(bundle)]) == 0
    (bundle / "_internal" / "pillow_heif.libs").mkdir()
    (bundle / "_internal" / "pillow_heif.libs" / "libx265-4883ecb5.so.217").write_bytes(b"GPL")
    assert cb.main(["notices", "--bundle", str(bundle)]) == 1


def _load_notices() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("vitfeat_notices", REPO / "packaging" / "notices.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notices_cover_the_runtime_dependencies() -> None:
    notices = _load_notices()
    text = notices.render()
    names = {notices._canon(d.metadata["Name"]) for d in notices.runtime_closure()}
    assert {"onnxruntime", "pyside6-essentials", "shiboken6", "hnswlib", "pi-heif", "rawpy", "numpy", "pillow",
            "certifi"} <= names
    assert "pillow-heif" not in names and "sympy" not in names
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in text and "LibRaw" in text


# -- constraints -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["linux-x86_64", "windows-x86_64", "macos-arm64", "macos-x86_64"])
def test_release_constraints_pin_every_runtime_dependency(target: str) -> None:
    import tomllib

    pins = {}
    for line in (REPO / "packaging" / "constraints" / f"release-{target}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~; \[]", dep, maxsplit=1)[0]).lower()
        assert name in pins, (target, name)
    assert pins["hnswlib"] and pins["pyinstaller"]
    if target == "macos-x86_64":  # the last versions with Intel-Mac wheels
        assert pins["onnxruntime"] == "1.23.2" and pins["rawpy"] == "0.25.1"


# -- the installed self-test's TLS check -----------------------------------------------------------------------

def test_tls_self_test_fails_without_ca_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from vitfeat_desktop.core.models import http_client
    from vitfeat_desktop.selftest import checks
    from vitfeat_desktop.selftest.context import CheckFailed, Context

    ctx = Context(workdir=tmp_path, model_arg=None, quantized=True, photos_dir=tmp_path)
    assert "CA certificates" in checks.check_tls(ctx)
    empty = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifying, but no CA loaded: a frozen app without certifi
    monkeypatch.setattr(http_client, "_TLS", empty)
    monkeypatch.setattr(http_client, "_TLS_SOURCES", [])
    with pytest.raises(CheckFailed, match="CERTIFICATE_VERIFY_FAILED"):
        checks.check_tls(ctx)
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    monkeypatch.setattr(http_client, "_TLS", unverified)
    with pytest.raises(CheckFailed, match="does not verify"):
        checks.check_tls(ctx)
