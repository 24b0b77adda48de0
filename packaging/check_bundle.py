"""Build checks on a frozen bundle: what it demands of the user's machine must match what the installer declares.

Each subcommand reads the bundle's own binaries (no running of them), prints what it found and exits 1 when the
bundle would fail on a machine the installer claims to support:

``isa``      hnswlib's extension (and any other ``--lib``) may use no instruction beyond ``--baseline``
             (default ``x86-64``: SSE2, what every 64-bit x86 CPU has, and what CPython and manylinux wheels
             assume). A ``-march=native`` build on an AVX-512 runner dies with "Illegal instruction" elsewhere.
             Disassembles with ``objdump -d`` and classifies each instruction (zmm/k-masks: AVX-512; ymm or
             VEX-encoded: AVX/AVX2/FMA; BMI/LZCNT/MOVBE: x86-64-v3; SSE3..SSE4.2/POPCNT: x86-64-v2).
``glibc``    the highest ``GLIBC_x.y`` symbol version any bundled ELF file needs (read from ``.gnu.version_r``,
             in pure Python), which is the oldest glibc the bundle starts on. ``--print`` prints it for the
             .deb's ``Depends: libc6 (>= x.y)``; ``--deb FILE`` fails unless the built .deb declares exactly it.
``macos``    the highest ``LC_BUILD_VERSION``/``LC_VERSION_MIN_MACOSX`` minimum of every Mach-O file in the .app
             (for ``--arch``), against ``LSMinimumSystemVersion`` in its Info.plist; ``--write`` sets it first.
``msvc``     every Visual C++ runtime DLL an extension imports (msvcp140*, vcruntime140*, vcomp140, concrt140)
             must be in the bundle, every copy at least ``--min`` (14.40: onnxruntime >= 1.21 is built with
             VS 17.10+, whose ``std::mutex`` crashes on older msvcp140.dll), because a clean Windows has none.
``notices``  the third-party notices file is in the bundle and names every component that asks for one.

    python packaging/check_bundle.py isa --bundle packaging/out/dist/vitfeat-desktop
    python packaging/check_bundle.py glibc --bundle packaging/out/dist/vitfeat-desktop --deb packaging/out/x.deb
"""

from __future__ import annotations

import argparse
import plistlib
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

# ---------------------------------------------------------------------------------------------------------------
# isa: instruction-set baseline
# ---------------------------------------------------------------------------------------------------------------
X86_LEVELS = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4")
_V2 = {
    # SSE3
    "addsubpd", "addsubps", "haddpd", "haddps", "hsubpd", "hsubps", "lddqu", "movddup", "movshdup", "movsldup",
    "fisttp", "fisttps", "fisttpl", "fisttpll", "monitor", "mwait",
    # SSSE3
    "pabsb", "pabsw", "pabsd", "palignr", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw",
    "pmaddubsw", "pmulhrsw", "pshufb", "psignb", "psignw", "psignd",
    # SSE4.1
    "blendpd", "blendps", "blendvpd", "blendvps", "dppd", "dpps", "extractps", "insertps", "movntdqa",
    "mpsadbw", "packusdw", "pblendvb", "pblendw", "pcmpeqq", "pextrb", "pextrd", "pextrq", "phminposuw",
    "pinsrb", "pinsrd", "pinsrq", "pmaxsb", "pmaxsd", "pmaxud", "pmaxuw", "pminsb", "pminsd", "pminud", "pminuw",
    "pmovsxbw", "pmovsxbd", "pmovsxbq", "pmovsxwd", "pmovsxwq", "pmovsxdq", "pmovzxbw", "pmovzxbd", "pmovzxbq",
    "pmovzxwd", "pmovzxwq", "pmovzxdq", "pmuldq", "pmulld", "ptest", "roundpd", "roundps", "roundsd", "roundss",
    # SSE4.2 and POPCNT
    "pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm", "pcmpgtq", "crc32", "crc32b", "crc32w", "crc32l",
    "crc32q", "popcnt",
}
# tzcnt is left out on purpose: compilers emit ``rep bsf`` for count-trailing-zeros on every target (it runs as
# bsf on CPUs without BMI1, with the same result for non-zero input) and objdump shows it as tzcnt.
_V3_SCALAR = {"andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "mulx", "pdep", "pext", "rorx", "sarx", "shlx",
              "shrx", "lzcnt", "movbe"}
_LEGACY_V = {"verr", "verw"}  # old protected-mode instructions that happen to start with "v"


def x86_level(mnemonic: str, operands: str) -> int:
    """0..3 = the x86-64 micro-architecture level (v1..v4) an instruction needs."""
    if "zmm" in operands or re.search(r"%k[0-7]|\{k[0-7]\}", operands):
        return 3
    if "ymm" in operands or (mnemonic.startswith("v") and mnemonic not in _LEGACY_V):
        return 2
    if mnemonic in _V3_SCALAR:
        return 2
    if mnemonic in _V2:
        return 1
    return 0


def disassemble(lib: Path) -> Iterator[tuple[str, str]]:
    """(mnemonic, operands) of every instruction in the executable sections of ``lib`` (objdump)."""
    objdump = shutil.which("objdump") or shutil.which("llvm-objdump")
    if objdump is None:
        raise SystemExit("check_bundle isa: objdump not found (apt install binutils / Xcode command line tools)")
    proc = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"check_bundle isa: objdump failed on {lib}: {proc.stderr.strip()[:300]}")
    for line in proc.stdout.splitlines():
        # "  4011a0:\tvmovups %ymm0,(%rax)" (GNU) or "  4011a0: vmovups ..." (llvm)
        match = re.match(r"^\s*[0-9a-f]+:\s+(?:(?:[0-9a-f]{2} )+\s*)?([a-z][a-z0-9.]*)\s*(.*)$", line)
        if not match:
            continue
        mnemonic, operands = match.group(1), match.group(2)
        if mnemonic in ("rep", "repz", "repnz", "lock", "notrack", "bnd", "data16", "cs", "ds") and operands:
            mnemonic, _, operands = operands.partition(" ")
        yield mnemonic, operands


def isa_report(lib: Path, baseline: str) -> tuple[bool, str]:
    """(ok, one-line summary) for one library against an x86-64 level."""
    limit = X86_LEVELS.index(baseline)
    counts = [0, 0, 0, 0]
    examples: dict[int, set[str]] = {1: set(), 2: set(), 3: set()}
    total = 0
    for mnemonic, operands in disassemble(lib):
        level = x86_level(mnemonic, operands)
        counts[level] += 1
        total += 1
        if level and len(examples[level]) < 6:
            examples[level].add(mnemonic)
    if total == 0:
        return False, f"{lib.name}: no instructions disassembled (not an x86-64 library?)"
    worst = max((lvl for lvl in range(4) if counts[lvl]), default=0)
    parts = [f"{X86_LEVELS[lvl]}-only: {counts[lvl]} ({', '.join(sorted(examples[lvl]))})"
             for lvl in (1, 2, 3) if counts[lvl]]
    detail = f"{lib.name}: {total} instructions, needs {X86_LEVELS[worst]}" + (f"; {'; '.join(parts)}" if parts else "")
    return worst <= limit, detail


def find_libs(bundle: Path, pattern: str) -> list[Path]:
    return sorted(p for p in bundle.rglob(pattern) if p.is_file())


def cmd_isa(args: argparse.Namespace) -> int:
    libs = [Path(p) for p in args.lib]
    if args.bundle:
        libs += find_libs(Path(args.bundle), "hnswlib*.so") + find_libs(Path(args.bundle), "hnswlib*.pyd")
    if not libs:
        print("check_bundle isa: no hnswlib extension found", file=sys.stderr)
        return 1
    machine = args.machine or _machine()
    if machine not in ("x86_64", "amd64"):
        # arm64: the wheels and the bundle target the architecture's base (armv8-a / Apple M1); SVE is the only
        # extension a -march=native build on a Graviton/Neoverse runner could add.
        bad = [lib for lib in libs for m, ops in disassemble(lib) if re.search(r"\bz\d{1,2}\.[bhsdq]\b", ops)]
        print(f"check_bundle isa ({machine}): {'SVE found in ' + str(bad[0]) if bad else 'no SVE instructions'}")
        return 1 if bad else 0
    failed = False
    for lib in libs:
        ok, detail = isa_report(lib, args.baseline)
        print(f"{'ok  ' if ok else 'FAIL'} {detail} (baseline {args.baseline})")
        failed |= not ok
    if failed:
        print(f"check_bundle isa: a library needs more than {args.baseline}; rebuild it with HNSWLIB_NO_NATIVE=1",
              file=sys.stderr)
    return 1 if failed else 0


def _machine() -> str:
    import platform

    return platform.machine().lower()


# ---------------------------------------------------------------------------------------------------------------
# glibc: symbol versions of every bundled ELF file
# ---------------------------------------------------------------------------------------------------------------
SHT_GNU_VERNEED = 0x6FFFFFFE
GLIBC_SONAMES = re.compile(r"^(libc|libm|libpthread|libdl|librt|libutil|libresolv|ld-linux[-\w]*)\.so")


def elf_version_needs(path: Path) -> dict[str, set[str]]:
    """{needed soname: {version names}} from an ELF file's ``.gnu.version_r``; {} for non-ELF or broken files."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"\x7fELF":
                return {}
        data = path.read_bytes()
    except OSError:
        return {}
    try:
        return _elf_version_needs(data)
    except (struct.error, ValueError, IndexError):
        return {}


def _elf_version_needs(data: bytes) -> dict[str, set[str]]:
    if data[:4] != b"\x7fELF" or len(data) < 64:
        return {}
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        sec_fmt = end + "IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        sec_fmt = end + "IIIIIIIIII"
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + struct.calcsize(sec_fmt) > len(data):
            return {}
        _name, stype, _flags, _addr, offset, size, link, info, _align, _entsize = struct.unpack_from(sec_fmt, data,
                                                                                                    off)
        sections.append((stype, offset, size, link, info))
    needs: dict[str, set[str]] = {}
    for stype, offset, _size, link, count in sections:
        if stype != SHT_GNU_VERNEED or link >= len(sections):
            continue
        strtab = sections[link][1]

        def cstr(at: int, strtab: int = strtab) -> str:
            stop = data.index(b"\0", strtab + at)
            return data[strtab + at: stop].decode("ascii", "replace")

        pos = offset
        for _ in range(count):
            _ver, cnt, file_off, aux, nxt = struct.unpack_from(end + "HHIII", data, pos)
            names = needs.setdefault(cstr(file_off), set())
            apos = pos + aux
            for _ in range(cnt):
                _hash, _flags, _other, name_off, anext = struct.unpack_from(end + "IHHII", data, apos)
                names.add(cstr(name_off))
                if not anext:
                    break
                apos += anext
            if not nxt:
                break
            pos += nxt
    return needs


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def glibc_requirement(bundle: Path) -> tuple[str, list[tuple[str, Path]]]:
    """The highest GLIBC_x.y needed by any file in ``bundle`` and the files that need it."""
    best = "2.17"
    who: list[tuple[str, Path]] = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()):
        for soname, versions in elf_version_needs(path).items():
            if not GLIBC_SONAMES.match(soname):
                continue
            for v in versions:
                if not v.startswith("GLIBC_") or not re.fullmatch(r"GLIBC_\d+(\.\d+)+", v):
                    continue
                number = v[len("GLIBC_"):]
                if _version_key(number) > _version_key(best):
                    best, who = number, [(v, path)]
                elif number == best:
                    who.append((v, path))
    return best, who


# glibc of common distributions' releases (oldest first), to say what a bundle covers.
DISTRO_GLIBC = (("CentOS/RHEL 7", "2.17"), ("Debian 10", "2.28"), ("RHEL/Alma/Rocky 8", "2.28"),
                ("Ubuntu 20.04", "2.31"), ("Debian 11", "2.31"), ("RHEL/Alma/Rocky 9", "2.34"),
                ("Ubuntu 22.04", "2.35"), ("Debian 12", "2.36"), ("Fedora 39", "2.38"), ("Ubuntu 24.04", "2.39"),
                ("Debian 13", "2.41"))


def covered_distributions(need: str) -> list[str]:
    return [name for name, glibc in DISTRO_GLIBC if _version_key(glibc) >= _version_key(need)]


def deb_declared_libc(deb: Path) -> str | None:
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True)
    match = re.search(r"\blibc6 \(>= ([\d.]+)\)", proc.stdout)
    return match.group(1) if match else None


def cmd_glibc(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    need, who = glibc_requirement(bundle)
    if args.print:
        print(need)
        return 0
    names = sorted({p.name for _, p in who})
    print(f"bundle needs glibc >= {need} (GLIBC_{need} used by {', '.join(names[:8]) or 'nothing'}"
          f"{' ...' if len(names) > 8 else ''}); of the common releases it runs on: "
          f"{', '.join(covered_distributions(need))} and newer")
    if args.deb:
        declared = deb_declared_libc(Path(args.deb))
        if declared != need:
            print(f"FAIL: {Path(args.deb).name} declares libc6 (>= {declared}) but the bundle needs glibc {need}",
                  file=sys.stderr)
            return 1
        print(f"ok   {Path(args.deb).name} declares libc6 (>= {declared})")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# macos: minimum macOS of every Mach-O file
# ---------------------------------------------------------------------------------------------------------------
LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32
PLATFORM_MACOS = 1
CPU_TYPES = {0x01000007: "x86_64", 0x0100000C: "arm64"}


def _decode_version(v: int) -> str:
    return f"{v >> 16}.{(v >> 8) & 0xFF}" + (f".{v & 0xFF}" if v & 0xFF else "")


def _thin_min(data: bytes, base: int) -> tuple[str, str | None] | None:
    """(arch, minimum macOS) of one thin Mach-O image at ``base``."""
    magic, = struct.unpack_from("<I", data, base)
    if magic not in (0xFEEDFACF, 0xFEEDFACE):
        return None
    cputype, _sub, _ftype, ncmds, _size = struct.unpack_from("<iiIII", data, base + 4)
    pos = base + (32 if magic == 0xFEEDFACF else 28)
    found: str | None = None
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, pos)
        if cmd == LC_BUILD_VERSION:
            platform_id, minos = struct.unpack_from("<II", data, pos + 8)
            if platform_id == PLATFORM_MACOS:
                found = _decode_version(minos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            version, = struct.unpack_from("<I", data, pos + 8)
            found = _decode_version(version)
        if cmdsize <= 0:
            break
        pos += cmdsize
    return CPU_TYPES.get(cputype & 0xFFFFFFFF, hex(cputype & 0xFFFFFFFF)), found


def macho_minimums(path: Path) -> dict[str, str]:
    """{arch: minimum macOS} for a thin or universal Mach-O file ({} for anything else)."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) not in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe",
                                  b"\xca\xfe\xba\xbf"):
                return {}
        data = path.read_bytes()
    except OSError:
        return {}
    return macho_minimums_from_bytes(data)


def macho_minimums_from_bytes(data: bytes) -> dict[str, str]:
    try:
        return _macho_minimums(data)
    except (struct.error, ValueError, IndexError):
        return {}


def _macho_minimums(data: bytes) -> dict[str, str]:
    if len(data) < 32:
        return {}
    out: dict[str, str] = {}
    magic_be, = struct.unpack_from(">I", data, 0)
    if magic_be in (0xCAFEBABE, 0xCAFEBABF) and struct.unpack_from(">I", data, 4)[0] < 32:
        nfat, = struct.unpack_from(">I", data, 4)
        wide = magic_be == 0xCAFEBABF
        for i in range(nfat):
            if wide:
                _ct, _st, offset, _size, _align, _res = struct.unpack_from(">iiQQII", data, 8 + i * 32)
            else:
                _ct, _st, offset, _size, _align = struct.unpack_from(">iiIII", data, 8 + i * 20)
            thin = _thin_min(data, offset)
            if thin and thin[1]:
                out[thin[0]] = thin[1]
        return out
    thin = _thin_min(data, 0)
    if thin and thin[1]:
        out[thin[0]] = thin[1]
    return out


def macos_requirement(app: Path, arch: str) -> tuple[str, list[Path]]:
    best, who = "10.9", []
    for path in sorted(p for p in app.rglob("*") if p.is_file() and not p.is_symlink()):
        minimum = macho_minimums(path).get(arch)
        if minimum is None:
            continue
        if _version_key(minimum) > _version_key(best):
            best, who = minimum, [path]
        elif _version_key(minimum) == _version_key(best):
            who.append(path)
    return best, who


def cmd_macos(args: argparse.Namespace) -> int:
    app = Path(args.app)
    need, who = macos_requirement(app, args.arch)
    plist_path = app / "Contents" / "Info.plist"
    with plist_path.open("rb") as fh:
        info = plistlib.load(fh)
    if args.write:
        info["LSMinimumSystemVersion"] = need
        with plist_path.open("wb") as fh:
            plistlib.dump(info, fh)
    declared = str(info.get("LSMinimumSystemVersion", ""))
    names = sorted({p.name for p in who})
    print(f"{args.arch}: bundle needs macOS {need} ({', '.join(names[:6])}{' ...' if len(names) > 6 else ''}); "
          f"Info.plist declares {declared or 'nothing'}")
    if _version_key(declared) != _version_key(need):
        print(f"FAIL: LSMinimumSystemVersion {declared} but the bundled libraries need macOS {need}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------------------------
# msvc: the Visual C++ runtime on a clean Windows
# ---------------------------------------------------------------------------------------------------------------
VC_RUNTIME = re.compile(r"^(msvcp140(_\w+)?|vcruntime140(_\d)?|vcomp140|concrt140)\.dll$", re.IGNORECASE)


def pe_imports(path: Path) -> list[str]:
    """DLL names in a PE file's import table (empty for anything that is not a PE image)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return pe_imports_from_bytes(data)


def pe_imports_from_bytes(data: bytes) -> list[str]:
    try:
        return _pe_imports(data)
    except (struct.error, ValueError, IndexError):
        return []


def _pe_imports(data: bytes) -> list[str]:
    if data[:2] != b"MZ" or len(data) < 0x40:
        return []
    pe, = struct.unpack_from("<I", data, 0x3C)
    if data[pe:pe + 4] != b"PE\0\0":
        return []
    nsect, = struct.unpack_from("<H", data, pe + 6)
    opt_size, = struct.unpack_from("<H", data, pe + 20)
    opt = pe + 24
    magic, = struct.unpack_from("<H", data, opt)
    dirs = opt + (112 if magic == 0x20B else 96)
    import_rva, _ = struct.unpack_from("<II", data, dirs + 8)
    sections = []
    for i in range(nsect):
        s = opt + opt_size + i * 40
        vsize, vaddr, rsize, raw = struct.unpack_from("<IIII", data, s + 8)
        sections.append((vaddr, max(vsize, rsize), raw))

    def to_off(rva: int) -> int | None:
        for vaddr, size, raw in sections:
            if vaddr <= rva < vaddr + size:
                return rva - vaddr + raw
        return None

    names = []
    pos = to_off(import_rva) if import_rva else None
    while pos is not None and pos + 20 <= len(data):
        name_rva, = struct.unpack_from("<I", data, pos + 12)
        if name_rva == 0:
            break
        off = to_off(name_rva)
        if off is None:
            break
        names.append(data[off: data.index(b"\0", off)].decode("ascii", "replace"))
        pos += 20
    return names


def pe_file_version(path: Path) -> tuple[int, int, int, int] | None:
    """The file version from a DLL's VS_FIXEDFILEINFO (found by its signature, so no Windows API is needed)."""
    return pe_file_version_from_bytes(path.read_bytes())


def pe_file_version_from_bytes(data: bytes) -> tuple[int, int, int, int] | None:
    at = data.find(struct.pack("<I", 0xFEEF04BD))
    if at < 0:
        return None
    ms, ls = struct.unpack_from("<II", data, at + 8)
    return ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF


def _vc_scan(bundle: Path) -> tuple[dict[str, list[Path]], dict[str, set[Path]]]:
    """({runtime dll: copies in the bundle}, {runtime dll: files that import it})."""
    present: dict[str, list[Path]] = {}
    needed: dict[str, set[Path]] = {}
    for path in bundle.rglob("*"):
        if not path.is_file():
            continue
        if VC_RUNTIME.match(path.name):
            present.setdefault(path.name.lower(), []).append(path)
        if path.suffix.lower() in (".dll", ".pyd", ".exe"):
            for dll in pe_imports(path):
                if VC_RUNTIME.match(dll):
                    needed.setdefault(dll.lower(), set()).add(path)
    return present, needed


def install_vc_runtime(bundle: Path, redist: Path) -> list[Path]:
    """Copy the redistributable's DLLs next to every file that imports them, replacing older copies.

    Next to the importer because Python loads extension modules with LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: the
    importing DLL's own folder is searched before System32, where a clean or old Windows has none or an old one
    (an older msvcp140.dll crashes onnxruntime >= 1.21 in std::mutex). Microsoft allows this app-local copy.
    """
    sources = {p.name.lower(): p for p in redist.rglob("*.dll") if VC_RUNTIME.match(p.name)}
    present, needed = _vc_scan(bundle)
    written = []
    for dll, importers in needed.items():
        src = sources.get(dll)
        if src is None:
            continue
        targets = {imp.parent / src.name for imp in importers} | set(present.get(dll, []))
        for target in targets:
            shutil.copyfile(src, target)
            written.append(target)
    return written


def cmd_msvc(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    minimum = tuple(int(x) for x in args.min.split("."))
    if args.install_from:
        for path in install_vc_runtime(bundle, Path(args.install_from)):
            print(f"copied {path.relative_to(bundle)}")
    present, importers = _vc_scan(bundle)
    needed = {dll: {p.name for p in files} for dll, files in importers.items()}
    failed = False
    for dll in sorted(needed):
        copies = present.get(dll, [])
        if not copies:
            print(f"FAIL {dll} (needed by {', '.join(sorted(needed[dll])[:4])}) is not in the bundle")
            failed = True
            continue
        for copy in copies:
            version = pe_file_version(copy)
            shown = ".".join(map(str, version)) if version else "?"
            ok = version is not None and version[:len(minimum)] >= minimum
            print(f"{'ok  ' if ok else 'FAIL'} {copy.relative_to(bundle)} {shown} (need >= {args.min})")
            failed |= not ok
    if not needed:
        print("check_bundle msvc: no Visual C++ runtime imports found (not a Windows bundle?)", file=sys.stderr)
        return 1
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------------
# notices
# ---------------------------------------------------------------------------------------------------------------
NOTICE_FILE = "THIRD-PARTY-NOTICES.txt"
REQUIRED_NOTICES = ("PySide6", "Qt", "onnxruntime", "hnswlib", "pi-heif", "libheif", "libde265", "rawpy", "LibRaw",
                    "numpy", "pillow", "Python")


def cmd_notices(args: argparse.Namespace) -> int:
    files = find_libs(Path(args.bundle), NOTICE_FILE)
    if not files:
        print(f"FAIL no {NOTICE_FILE} in {args.bundle}", file=sys.stderr)
        return 1
    text = files[0].read_text(encoding="utf-8").lower()
    missing = [name for name in REQUIRED_NOTICES if name.lower() not in text]
    for marker in ("lgpl-3.0", "gnu lesser general public license"):
        if marker not in text:
            missing.append(marker)
    gpl = [p for p in Path(args.bundle).rglob("*") if re.search(r"x265|pillow_heif", p.name, re.IGNORECASE)]
    if gpl:
        print(f"FAIL the bundle carries pillow-heif's GPL x265 encoder ({gpl[0]}); build with pi-heif only",
              file=sys.stderr)
        return 1
    if missing:
        print(f"FAIL {files[0]} lacks notices for: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"ok   {files[0].relative_to(args.bundle)}: {len(text) // 1024} KiB, names {', '.join(REQUIRED_NOTICES)}; "
          "no x265 encoder in the bundle")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("isa", help="no instructions beyond the baseline in hnswlib's extension")
    p.add_argument("--bundle")
    p.add_argument("--lib", action="append", default=[])
    p.add_argument("--baseline", default="x86-64", choices=X86_LEVELS)
    p.add_argument("--machine", help="x86_64 or arm64 (default: this machine)")
    p.set_defaults(func=cmd_isa)
    p = sub.add_parser("glibc", help="oldest glibc the bundle runs on, against the .deb's Depends")
    p.add_argument("--bundle", required=True)
    p.add_argument("--deb")
    p.add_argument("--print", action="store_true", help="only print the version (for build_linux.sh)")
    p.set_defaults(func=cmd_glibc)
    p = sub.add_parser("macos", help="oldest macOS the .app runs on, against its Info.plist")
    p.add_argument("--app", required=True)
    p.add_argument("--arch", default=_machine())
    p.add_argument("--write", action="store_true", help="set LSMinimumSystemVersion to what the libraries need")
    p.set_defaults(func=cmd_macos)
    p = sub.add_parser("msvc", help="Visual C++ runtime DLLs bundled and recent enough")
    p.add_argument("--bundle", required=True)
    p.add_argument("--min", default="14.40")
    p.add_argument("--install-from", metavar="REDIST_DIR",
                   help="first copy the DLLs found under this folder (VC\\Redist\\MSVC\\<v>\\x64) into the bundle")
    p.set_defaults(func=cmd_msvc)
    p = sub.add_parser("notices", help="third-party notices present and complete")
    p.add_argument("--bundle", required=True)
    p.set_defaults(func=cmd_notices)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
