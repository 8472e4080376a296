#!/usr/bin/env bash
# Prepare this checkout to run: a Python >= 3.11 virtualenv in .venv with the project
# installed (editable, with dev extras), and a redis-server binary when it can be installed.
#
# Idempotent: a second run does nothing but checks.  Run it, or source it (`. scripts/setup.sh`;
# the work then runs in a subshell, so your shell's options are untouched, and TM_ROOT,
# TM_VENV and TM_PY are exported afterwards).
#
# Environment:
#   PYTHON=/path/to/python3    interpreter to build .venv with (default: python3.13..python3)
#   TM_WITH_CHROMIUM=1         also install Debian's chromium (/usr/bin/chromium: the browser
#                              tests drive it with Playwright, which downloads no browser)
#   TM_NO_APT=1                never call apt-get
#   CI=true                    missing system packages are errors, not warnings
#
# Only package registries are contacted (PyPI through pip, Debian through apt-get).

_tm_setup_main() {
    set -euo pipefail
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"

    local ci=0
    case "${CI:-}" in 1 | true | TRUE | True | yes) ci=1 ;; esac
    say() { printf '[setup] %s\n' "$*"; }
    warn() { printf '[setup] WARNING: %s\n' "$*" >&2; }
    die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

    # ------------------------------------------------------------------ apt helpers
    local apt_prefix="" apt_ok=0 apt_updated=0
    if [[ "${TM_NO_APT:-0}" != 1 ]] && command -v apt-get >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]]; then
            apt_ok=1
        elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            apt_ok=1
            apt_prefix="sudo -n"
        fi
    fi
    apt_install() { # apt_install PKG... ; returns non-zero on failure
        [[ $apt_ok == 1 ]] || return 1
        if [[ $apt_updated == 0 ]]; then
            say "apt-get update"
            $apt_prefix env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
            apt_updated=1
        fi
        say "apt-get install $*"
        $apt_prefix env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
    }

    # ------------------------------------------------------------------ python + venv
    local venv="$root/.venv" vpy="$root/.venv/bin/python"
    if [[ ! -x "$vpy" ]] || ! "$vpy" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        local py="" cand
        for cand in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
            if command -v "$cand" >/dev/null 2>&1 &&
                "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                py="$(command -v "$cand")"
                break
            fi
        done
        if [[ -z "$py" ]]; then
            local found="none"
            command -v python3 >/dev/null 2>&1 && found="$(python3 -V 2>&1)"
            die "Python >= 3.11 is required (found: $found). Install python3.11+ (Debian 12: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11"
        fi
        [[ -e "$venv" ]] && { say "removing unusable .venv"; rm -rf "$venv"; }
        say "creating .venv with $py ($("$py" -V 2>&1))"
        if ! "$py" -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            local pyver
            pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            apt_install "python${pyver}-venv" || apt_install python3-venv ||
                die "'$py -m venv' failed: install the venv module (Debian: apt-get install python3-venv)"
            "$py" -m venv "$venv" || die "'$py -m venv $venv' failed"
        fi
    fi

    # ------------------------------------------------------------------ project install
    local stamp="$venv/.tradingmesh-install.sha256" want have=""
    want="$("$vpy" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' pyproject.toml)"
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    if [[ "$want" != "$have" || ! -x "$venv/bin/tradingmesh" ]]; then
        say "pip install -e '.[dev]' (new .venv, or pyproject.toml changed since the last install)"
        "$vpy" -m pip install -q --upgrade pip || warn "could not upgrade pip (continuing)"
        "$vpy" -m pip install -q -e '.[dev]' || die "pip install -e '.[dev]' failed"
        printf '%s\n' "$want" >"$stamp"
    else
        say "python deps up to date ($("$vpy" -V 2>&1), .venv)"
    fi

    # ------------------------------------------------------------------ redis-server
    if [[ -n "${REDIS_URL:-}" ]]; then
        say "REDIS_URL is set: using $REDIS_URL"
    elif command -v redis-server >/dev/null 2>&1; then
        say "redis-server: $(command -v redis-server) ($(redis-server --version | awk '{print $3}'))"
    elif apt_install redis-server && command -v redis-server >/dev/null 2>&1; then
        say "installed redis-server ($(redis-server --version | awk '{print $3}'))"
    elif [[ $ci == 1 ]]; then
        die "redis-server is missing and could not be installed (CI=true)"
    else
        warn "no redis-server and could not install it (needs root or passwordless sudo + apt):"
        warn "the mesh will use its EMBEDDED in-process stand-in (fakeredis; not for production)."
        warn "Install redis-server yourself or set REDIS_URL to use a real Redis."
    fi

    # ------------------------------------------------------------------ chromium (tests)
    # The browser tests drive Debian's /usr/bin/chromium through Playwright (which never
    # downloads a browser of its own), so that exact binary is what counts here.
    if [[ "${TM_WITH_CHROMIUM:-0}" == 1 ]]; then
        if [[ -x /usr/bin/chromium ]]; then
            say "browser: /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
        elif apt_install chromium && [[ -x /usr/bin/chromium ]]; then
            say "installed chromium ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
        elif [[ $ci == 1 ]]; then
            die "chromium is missing and could not be installed (CI=true)"
        else
            warn "chromium is not installed and could not be installed: browser tests will skip"
        fi
    fi
    say "ready: $root"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # sourced: run in a subshell so `set -e` and `cd` do not leak into the caller
    (_tm_setup_main "$@") || return $?
    TM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    TM_VENV="$TM_ROOT/.venv"
    TM_PY="$TM_VENV/bin/python"
    export TM_ROOT TM_VENV TM_PY
    unset -f _tm_setup_main
else
    _tm_setup_main "$@"
fi
