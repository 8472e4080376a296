#Requires -Version 7.0
<#
.SYNOPSIS
    Set up and start the trading mesh on Windows (PowerShell 7).

.DESCRIPTION
    scripts\launch.ps1                  # = up: start the orchestrator and every agent
    scripts\launch.ps1 up [args...]     # tradingmesh up [args...]
    scripts\launch.ps1 run [args...]    # tradingmesh run [--data DIR] [--speed max|N] [--report FILE]

    1. Finds Python >= 3.11 (the py launcher or python on PATH), creates .venv if missing and
       runs `pip install -e .[dev]` when pyproject.toml changed since the last install.
    2. Redis: REDIS_URL if set; else redis-server.exe on PATH (e.g. Memurai or a Redis for
       Windows build), started on a free port by `python -m backend.redisproc serve` with its
       data in var\redis (var\redis-replay, emptied first, for `run`) and stopped when this script ends; else REDIS_URL stays unset and
       tradingmesh starts its embedded stand-in (fakeredis, with a warning).
       Security: the private server listens on 127.0.0.1 only with protected mode on.  On Linux
       and macOS (PowerShell 7) it also runs the mesh's ACL (`serve --acl`, backend/redis_acl.py):
       `default` user off, one generated password per role in <data dir>\credentials (mode
       0600), exported as TRADINGMESH_REDIS_CREDENTIALS; REDIS_URL carries no password and no
       password is printed.  On Windows the ACL is off by default: the credentials file's
       owner-only check relies on POSIX permission bits (set TRADINGMESH_REDIS_ACL=1 to try).
       TRADINGMESH_REDIS_ACL=0 turns it off everywhere.
    3. Runs .venv\Scripts\tradingmesh.exe with the command and arguments; Ctrl-C stops it.

    Only package registries are contacted (PyPI through pip).
#>
# No param() block: every argument, `--data DIR` included, reaches $args untouched
# (declared parameters would make PowerShell parse `--speed` as one of its own).
$Command = 'up'
$Rest = @($args)
if ($Rest.Count -gt 0 -and -not "$($Rest[0])".StartsWith('-')) {
    $Command = "$($Rest[0])"
    $Rest = @($Rest | Select-Object -Skip 1)
}

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

function Say([string]$msg) { Write-Host "[launch] $msg" }
function Hide-Password([string]$url) { $url -replace '//[^/@]*@', '//' }  # no user:password@

$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

$OnWindows = [bool]$IsWindows
$BinDir = if ($OnWindows) { 'Scripts' } else { 'bin' }
$Exe = if ($OnWindows) { '.exe' } else { '' }
$Venv = Join-Path $Root '.venv'
$VenvPy = Join-Path $Venv (Join-Path $BinDir "python$Exe")
$Tm = Join-Path $Venv (Join-Path $BinDir "tradingmesh$Exe")

function Test-Python([string[]]$cmd) {
    try {
        $extra = @()
        if ($cmd.Length -gt 1) { $extra = $cmd[1..($cmd.Length - 1)] }
        & $cmd[0] @extra -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>$null
        return ($LASTEXITCODE -eq 0)
    } catch {
        return $false
    }
}

# ---------------------------------------------------------------- 1. python + venv
Say 'setup'
if (-not (Test-Path $VenvPy) -or -not (Test-Python @($VenvPy))) {
    $candidates = @()
    if ($env:PYTHON) { $candidates += , @($env:PYTHON) }
    if (Get-Command py -ErrorAction SilentlyContinue) {
        $candidates += , @('py', '-3.13'); $candidates += , @('py', '-3.12'); $candidates += , @('py', '-3.11')
    }
    $candidates += , @('python3'); $candidates += , @('python')
    $py = $null
    foreach ($c in $candidates) {
        if ((Get-Command $c[0] -ErrorAction SilentlyContinue) -and (Test-Python $c)) { $py = $c; break }
    }
    if ($null -eq $py) {
        throw 'Python >= 3.11 is required: install it from python.org or with `winget install Python.Python.3.11`, or set $env:PYTHON to its python.exe'
    }
    if (Test-Path $Venv) { Say 'removing unusable .venv'; Remove-Item -Recurse -Force $Venv }
    Say "creating .venv with $($py -join ' ')"
    $pyArgs = @()
    if ($py.Length -gt 1) { $pyArgs = $py[1..($py.Length - 1)] }
    & $py[0] @pyArgs -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "'$($py -join ' ') -m venv .venv' failed" }
}

$Stamp = Join-Path $Venv '.tradingmesh-install.sha256'
$Want = (Get-FileHash -Algorithm SHA256 (Join-Path $Root 'pyproject.toml')).Hash.ToLowerInvariant()
$Have = if (Test-Path $Stamp) { (Get-Content $Stamp -Raw).Trim() } else { '' }
if ($Want -ne $Have -or -not (Test-Path $Tm)) {
    Say "pip install -e .[dev] (new .venv, or pyproject.toml changed since the last install)"
    & $VenvPy -m pip install -q --upgrade pip
    & $VenvPy -m pip install -q -e '.[dev]'
    if ($LASTEXITCODE -ne 0) { throw "pip install -e .[dev] failed" }
    Set-Content -Path $Stamp -Value $Want -NoNewline
} else {
    Say 'python deps up to date (.venv)'
}

# ---------------------------------------------------------------- 2. redis
$ServeProc = $null
# `up` keeps its data (AOF) in var\redis; a replay (`run`) needs an empty Redis: var\redis-replay,
# wiped first (--fresh), so up's state (e.g. a latched kill switch) is never touched.
$VarRedis = Join-Path (Join-Path $Root 'var') ($(if ($Command -eq 'run') { 'redis-replay' } else { 'redis' }))
if ($env:REDIS_URL) {
    Say "redis: REDIS_URL=$(Hide-Password $env:REDIS_URL) (from the environment)"
    if ($env:TRADINGMESH_REDIS_CREDENTIALS) {
        Say "redis: ACL credentials from TRADINGMESH_REDIS_CREDENTIALS=$($env:TRADINGMESH_REDIS_CREDENTIALS)"
    }
} elseif (Get-Command "redis-server$Exe" -ErrorAction SilentlyContinue) {
    New-Item -ItemType Directory -Force -Path $VarRedis | Out-Null
    $Out = Join-Path $VarRedis 'serve.out'
    $Err = Join-Path $VarRedis 'serve.log'
    Remove-Item -Force -ErrorAction SilentlyContinue $Out
    # Start-Process joins ArgumentList with spaces and does not quote: quote the path.
    $serveArgs = @('-m', 'backend.redisproc', 'serve', '--var', "`"$VarRedis`"", '--watch-pid', "$PID")
    if ($Command -eq 'run') { $serveArgs += '--fresh' }   # a replay starts from empty data
    $UseAcl = if ($env:TRADINGMESH_REDIS_ACL) { $env:TRADINGMESH_REDIS_ACL -ne '0' } else { -not $OnWindows }
    if ($UseAcl) { $serveArgs += '--acl' } else { Say 'redis: no ACL (no password; loopback only)' }
    Say "redis: starting a private redis-server (data and log in $VarRedis)"
    $startArgs = @{
        FilePath               = $VenvPy
        ArgumentList           = $serveArgs
        RedirectStandardOutput = $Out
        RedirectStandardError  = $Err
        PassThru               = $true
    }
    # Its own (hidden) console on Windows: the Ctrl-C that stops tradingmesh must not stop
    # Redis before the agents have shut down.
    if ($OnWindows) { $startArgs.WindowStyle = 'Hidden' } else { $startArgs.NoNewWindow = $true }
    $ServeProc = Start-Process @startArgs
    $url = $null
    $creds = $null
    $deadline = (Get-Date).AddSeconds(30)
    while ((Get-Date) -lt $deadline) {
        if (Test-Path $Out) {
            # line 1: REDIS_URL=... (no password); with --acl line 2: REDIS_CREDENTIALS=FILE
            foreach ($line in @(Get-Content $Out -TotalCount 2 -ErrorAction SilentlyContinue)) {
                if ($line.StartsWith('REDIS_URL=')) { $url = $line.Substring(10).Trim() }
                if ($line.StartsWith('REDIS_CREDENTIALS=')) { $creds = $line.Substring(18).Trim() }
            }
            if ($url -and ($creds -or -not $UseAcl)) { break }
        }
        if ($ServeProc.HasExited) { break }
        Start-Sleep -Milliseconds 100
    }
    if (-not $url -or ($UseAcl -and -not $creds)) {
        if (Test-Path $Err) { Get-Content $Err -Tail 20 | Write-Host }
        if (-not $ServeProc.HasExited) { Stop-Process -Id $ServeProc.Id -Force }
        throw "redis-server did not start; see $VarRedis\serve.log and $VarRedis\redis.log"
    }
    $env:REDIS_URL = $url
    Say "redis: REDIS_URL=$url"
    if ($creds) {
        $env:TRADINGMESH_REDIS_CREDENTIALS = $creds
        Say "redis: ACL on (default user off); passwords in $creds (mode 0600)"
    } else {
        Remove-Item Env:TRADINGMESH_REDIS_CREDENTIALS -ErrorAction SilentlyContinue
    }
} else {
    Say 'redis: no redis-server.exe and no REDIS_URL: tradingmesh will use its embedded stand-in'
}

if ($env:REDIS_URL) {
    $cli = "redis-cli -u $(Hide-Password $env:REDIS_URL)"
    # read-only user; --askpass prompts for its password (the `dashboard` line of the file)
    if ($env:TRADINGMESH_REDIS_CREDENTIALS) { $cli += ' --user dashboard --askpass' }
    Say "watch the traffic: $cli PSUBSCRIBE '*'"
}

# ---------------------------------------------------------------- 3. tradingmesh
$code = 1
try {
    Say "starting: tradingmesh $Command $($Rest -join ' ')  (Ctrl-C to stop)"
    & $Tm $Command @Rest
    $code = $LASTEXITCODE
    Say "tradingmesh exited with code $code"
} finally {
    if ($null -ne $ServeProc -and -not $ServeProc.HasExited) {
        Say 'stopping redis-server'
        # SHUTDOWN through the server's URL (the AOF is flushed); the serve process then exits.
        & $VenvPy -m backend.redisproc stop --var $VarRedis
        if (-not $ServeProc.WaitForExit(15000)) { Stop-Process -Id $ServeProc.Id -Force }
    }
}
exit $code
