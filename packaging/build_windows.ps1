# Build the Windows bundle and its per-user installer (.exe) with PyInstaller and Inno Setup.
#
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 [-Python python] [-SkipInstaller]
#
# Needs: Python with the project installed (pip install . pyinstaller), Inno Setup 6 (iscc.exe on PATH or in
# its default folder; `choco install innosetup` on GitHub's runners).
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
Get-ChildItem "$Out\*-setup.exe" | ForEach-Object { Write-Host "installer: $($_.Name) $([math]::Round($_.Length / 1MB, 1)) MB" }
