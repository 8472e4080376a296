#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup and on_signal are run by traps
# Set up and start the trading mesh.
#
#   scripts/launch.sh                 # = up: start the orchestrator and every agent
#   scripts/launch.sh up [args...]    # tradingmesh up [args...]
#   scripts/launch.sh run [args...]   # tradingmesh run [--data DIR] [--speed max|N] [--report FILE]
#   scripts/launch.sh CMD [args...]   # any other tradingmesh command
#
# Redis: REDIS_URL if set; else a private redis-server on a free port (data in var/redis,
# stopped when this script ends); else tradingmesh's embedded stand-in (with a warning).
# `up` keeps var/redis's append-only file, so a latched kill switch survives a relaunch;
# `run` (a replay) gets an empty private redis-server in var/redis-replay.
#
# Security: the private redis-server listens on 127.0.0.1 only, protected mode on, with an
# ACL (backend/redisctl/acl.py): the `default` user is off, every agent role, the orchestrator
# and a read-only `dashboard` user have their own generated password, kept in
# <data dir>/credentials (mode 0600) and exported to tradingmesh as
# TRADINGMESH_REDIS_CREDENTIALS; REDIS_URL then carries no password.  No password is
# printed.  TRADINGMESH_REDIS_ACL=0 starts it without ACL (no password at all).
# With your own REDIS_URL, set TRADINGMESH_REDIS_CREDENTIALS if that Redis runs our ACL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[launch] %s\n' "$*"; }
redact() { printf '%s' "$1" | sed -E 's#//[^/@]*@#//#'; } # drop user:password@ from a URL

cmd="up"
if [[ $# -gt 0 && "$1" != -* ]]; then
    cmd="$1"
    shift
fi

say "setup (scripts/setup.sh)"
bash "$ROOT/scripts/setup.sh"
TM="$ROOT/.venv/bin/tradingmesh"
PY="$ROOT/.venv/bin/python"

redis_pid=""
child_pid=""
stopping=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$child_pid" ]] && kill -0 "$child_pid" 2>/dev/null; then
        say "stopping tradingmesh (pid $child_pid)"
        kill -TERM "$child_pid" 2>/dev/null || true
        wait "$child_pid" 2>/dev/null || true
    fi
    if [[ -n "$redis_pid" ]] && kill -0 "$redis_pid" 2>/dev/null; then
        say "stopping redis-server (serve pid $redis_pid)"
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    exit "$rc"
}

on_signal() { # forward to tradingmesh as SIGTERM; the third signal kills it
    local sig=$1
    if [[ -z "$child_pid" ]]; then
        exit 130
    fi
    stopping=$((stopping + 1))
    if [[ $stopping -ge 3 ]]; then
        say "$sig a third time: killing tradingmesh (pid $child_pid); its agents may be left running"
        kill -KILL "$child_pid" 2>/dev/null || true
    else
        say "$sig: asking tradingmesh to shut down (SIGTERM to pid $child_pid; 3 times to kill)"
        kill -TERM "$child_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

if [[ -n "${REDIS_URL:-}" ]]; then
    say "redis: REDIS_URL=$(redact "$REDIS_URL") (from the environment)"
    if [[ -n "${TRADINGMESH_REDIS_CREDENTIALS:-}" ]]; then
        say "redis: ACL credentials from TRADINGMESH_REDIS_CREDENTIALS=$TRADINGMESH_REDIS_CREDENTIALS"
    fi
elif command -v redis-server >/dev/null 2>&1; then
    # `up` keeps its data in var/redis (AOF); a replay (`run`) needs an empty Redis, so it
    # gets var/redis-replay, wiped first, and never touches up's state (e.g. a halt latch).
    rel="var/redis"
    fresh=()
    if [[ "$cmd" == run ]]; then
        rel="var/redis-replay"
        fresh=(--fresh)
    fi
    var="$ROOT/$rel"
    mkdir -p "$var"
    out="$var/serve.out"
    rm -f "$out"
    acl=(--acl)
    if [[ "${TRADINGMESH_REDIS_ACL:-1}" == 0 ]]; then
        acl=()
        say "redis: TRADINGMESH_REDIS_ACL=0: no ACL, no password (loopback only)"
    fi
    say "redis: starting a private redis-server (data and log in $rel)"
    # Started in the background, so it ignores the terminal's Ctrl-C: it is stopped last,
    # after tradingmesh has shut down.  --watch-pid: it also stops if this script is killed.
    "$PY" -m backend.redisctl.server serve --var "$var" --watch-pid $$ ${fresh[@]+"${fresh[@]}"} \
        ${acl[@]+"${acl[@]}"} >"$out" 2>>"$var/serve.log" &
    redis_pid=$!
    url=""
    creds=""
    for _ in $(seq 1 300); do # up to 30 s
        if [[ -s "$out" ]]; then
            # line 1: REDIS_URL=... (no password); with --acl line 2: REDIS_CREDENTIALS=FILE
            while IFS= read -r line; do
                case "$line" in
                    REDIS_URL=*) url="${line#REDIS_URL=}" ;;
                    REDIS_CREDENTIALS=*) creds="${line#REDIS_CREDENTIALS=}" ;;
                esac
            done <"$out"
            if [[ -n "$url" && (${#acl[@]} -eq 0 || -n "$creds") ]]; then
                break
            fi
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$url" || (${#acl[@]} -gt 0 && -z "$creds") ]]; then
        say "ERROR: redis-server did not start; see $rel/serve.log and $rel/redis.log:"
        tail -n 20 "$var/serve.log" >&2 || true
        exit 1
    fi
    export REDIS_URL="$url"
    if [[ -n "$creds" ]]; then
        export TRADINGMESH_REDIS_CREDENTIALS="$creds"
    else
        unset TRADINGMESH_REDIS_CREDENTIALS
    fi
    say "redis: REDIS_URL=$(redact "$REDIS_URL") (redis-server pid $(cat "$var/redis.pid" 2>/dev/null || echo '?'))"
    if [[ -n "$creds" ]]; then
        say "redis: ACL on (default user off); passwords in $creds (mode 0600)"
    fi
else
    say "redis: no redis-server and no REDIS_URL: tradingmesh will use its embedded stand-in"
fi

if [[ -n "${REDIS_URL:-}" ]]; then
    cli="redis-cli -u $(redact "$REDIS_URL")"
    if [[ -n "${TRADINGMESH_REDIS_CREDENTIALS:-}" ]]; then
        # read-only user; --askpass prompts for its password (the `dashboard` line of the file)
        cli="$cli --user dashboard --askpass"
    fi
    say "watch the traffic: $cli PSUBSCRIBE '*'"
    say "order history:     $cli XRANGE orders - +"
fi
if [[ "$cmd" == up ]]; then
    bearer='$(cat var/api_token)'
    if [[ -n "${TRADINGMESH_API_TOKEN:-}" ]]; then
        say "API token: from TRADINGMESH_API_TOKEN"
        bearer='$TRADINGMESH_API_TOKEN'
    else
        # First run: generate a random API token (mode 0600) into var/; `up` reads it.
        "$TM" token | sed 's/^/[launch] API token file /'
    fi
    # the API's port as `up` will use it: --api-port N / --api-port=N, else the setting
    api_port="${TRADINGMESH_API__PORT:-8000}"
    prev=""
    for arg in "$@"; do
        if [[ "$prev" == --api-port ]]; then api_port="$arg"; fi
        if [[ "$arg" == --api-port=* ]]; then api_port="${arg#--api-port=}"; fi
        prev="$arg"
    done
    if [[ "$api_port" == 0 ]]; then
        say "API: any free port; its URL goes to var/api_url once it listens"
    else
        say "API: curl -H \"Authorization: Bearer $bearer\" http://127.0.0.1:$api_port/api/agents"
    fi
fi
say "starting: tradingmesh $cmd $*  (Ctrl-C to stop)"
"$TM" "$cmd" "$@" &
child_pid=$!
# `wait` returns early when a trapped signal arrives: wait again until tradingmesh is gone.
rc=0
while :; do
    wait "$child_pid" && rc=0 || rc=$?
    kill -0 "$child_pid" 2>/dev/null || break
done
child_pid=""
say "tradingmesh exited with code $rc"
exit "$rc"
