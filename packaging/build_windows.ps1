# Build the Windows bundle and its per-user installer (.exe) with PyInstaller and Inno Setup.
#
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 [-Python python] [-SkipInstaller]
#
# Needs: Python with the project installed (pip install . pyinstaller; hnswlib built with HNSWLIB_NO_NATIVE=1),
# Inno Setup 6 (iscc.exe on PATH or in its default folder; `choco install innosetup` on GitHub's runners), Visual
# Studio's C++ redistributable folder (found with vswhere; the runners have it) and objdump (MinGW, on the runners).
# Outputs in packaging\out\: dist\vitfeat-desktop\ (the bundle) and vitfeat-desktop-<ver>-windows-x64-setup.exe
param(
    [string]$Python = "python",
    [switch]$SkipInstaller
)
$ErrorActionPreference = "Stop"
$Repo = Resolve-Path (Join-Path $PSScriptRoot "..")
$Out = Join-Path $Repo "packaging\out"
Set-Location $Repo

$Version = & $Python -c "import vitfeat_desktop; print(vitfeat_desktop.__version__)"
if ($LASTEXITCODE -ne 0) { throw "cannot import vitfeat_desktop with $Python" }
Write-Host "vitfeat-desktop $Version"

& $Python resources\make_icon.py "$Out\icons" | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icon generation failed" }

$env:VITFEAT_ICON_DIR = "$Out\icons"
& $Python -m PyInstaller --noconfirm --log-level WARN --distpath "$Out\dist" --workpath "$Out\work" packaging\vitfeat.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

$Bundle = Join-Path $Out "dist\vitfeat-desktop"
foreach ($exe in @("vitfeat-desktop.exe", "vitfeat.exe")) {
    if (-not (Test-Path (Join-Path $Bundle $exe))) { throw "bundle is missing $exe" }
}
# Visual C++ runtime, app-local: onnxruntime >= 1.21 needs msvcp140.dll >= 14.40 (older ones crash in
# std::mutex), hnswlib's OpenMP needs vcomp140.dll, and a clean Windows has neither. PyInstaller collects whatever
# copy it finds first (the runner's System32, or an older one shipped inside a package), so the DLLs of the
# installed Visual Studio's redistributable are copied next to every file that imports them, then checked.
$VsWhere = "${env:ProgramFiles(x86)}\Microsoft Visual Studio\Installer\vswhere.exe"
$Redist = $null
if (Test-Path $VsWhere) {
    $Vs = & $VsWhere -latest -products * -property installationPath
    $Redist = Get-ChildItem "$Vs\VC\Redist\MSVC" -Directory -ErrorAction SilentlyContinue |
        Where-Object { $_.Name -match '^\d+\.\d+\.\d+$' -and (Test-Path (Join-Path $_.FullName "x64")) } |
        Sort-Object { [version]$_.Name } -Descending | Select-Object -First 1
}
$MsvcArgs = @("packaging\check_bundle.py", "msvc", "--bundle", $Bundle, "--min", "14.40")
if ($Redist) { $MsvcArgs += @("--install-from", (Join-Path $Redist.FullName "x64")) }
else { Write-Warning "no Visual Studio redistributable folder found: checking the DLLs PyInstaller collected" }
& $Python @MsvcArgs
if ($LASTEXITCODE -ne 0) { throw "the bundle lacks a recent enough Visual C++ runtime" }
# hnswlib must be the portable build (HNSWLIB_NO_NATIVE=1; MSVC's default x64 target is SSE2)
& $Python packaging\check_bundle.py isa --bundle $Bundle --baseline x86-64
if ($LASTEXITCODE -ne 0) { throw "hnswlib uses instructions beyond x86-64" }
& $Python packaging\check_bundle.py notices --bundle $Bundle
if ($LASTEXITCODE -ne 0) { throw "third-party notices missing" }

$SizeMB = [math]::Round(((Get-ChildItem $Bundle -Recurse | Measure-Object Length -Sum).Sum / 1MB), 1)
Write-Host "bundle: $SizeMB MB"

if ($SkipInstaller) { return }
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) {
    $Iscc = @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe", "$env:ProgramFiles\Inno Setup 6\ISCC.exe") |
        Where-Object { Test-Path $_ } | Select-Object -First 1
}
if (-not $Iscc) { throw "Inno Setup's ISCC.exe was not found (choco install innosetup)" }
& $Iscc "/DAppVersion=$Version" "/DBundleDir=$Bundle" "/DIconFile=$Out\icons\vitfeat-desktop.ico" `
    "/DOutputDir=$Out" packaging\windows\vitfeat.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Get-ChildItem "$Out\*-setup.exe" | ForEach-Object {
    Write-Host "installer: $($_.Name) $([math]::Round($_.Length / 1MB, 1)) MB"
    # SHA-256 next to the installer, in sha256sum's format (LF, two spaces) so `sha256sum -c` checks it anywhere
    $Hash = (Get-FileHash -Algorithm SHA256 $_.FullName).Hash.ToLower()
    [IO.File]::WriteAllText("$($_.FullName).sha256", "$Hash  $($_.Name)`n")
}
