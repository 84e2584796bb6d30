# shellcheck shell=bash disable=SC2034 # boost and work are read by the sourcing script
# Shell helpers shared by the benchmark scripts (sourced, not run).
# The caller keeps the started server's pid in `server_pid`.

# A loopback port nobody listens on, below the ephemeral range.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        ss -Htln "sport = :$port" 2>/dev/null | grep -q . || {
            echo "$port"
            return
        }
    done
}

# Waits up to 10 s for something to listen on $1; fails at once if the
# server died.
wait_listening() {
    local _
    for _ in $(seq 100); do
        ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# SIGTERM, 5 s to exit, then SIGKILL.
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    local _
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# Other work on these CPUs runs in other sessions (autogroups): nice alone
# would only rank processes inside this session. As root, raises this
# session's autogroup to -20 and sets `boost` to the nice command to run
# under; `autogroup_nice` keeps the old value for restore_priority.
boost=()
autogroup_nice=
raise_priority() {
    if [ -w /proc/self/autogroup ] && [ "$(nice -n -20 nice 2>/dev/null)" = -20 ]; then
        autogroup_nice=$(sed -n 's/.* nice \(-\{0,1\}[0-9]*\).*/\1/p' /proc/self/autogroup)
        if echo -20 >/proc/self/autogroup 2>/dev/null; then
            boost=(nice -n -20)
        else
            autogroup_nice=
        fi
    fi
}

restore_priority() {
    [ -z "$autogroup_nice" ] || echo "$autogroup_nice" >/proc/self/autogroup 2>/dev/null || true
}

# Makes the run's scratch folder `work` (named after $1) and arranges that
# the server is stopped, the folder removed and the priority restored at
# exit, Ctrl-C included.
begin_run() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    server_pid=
    trap 'stop_server; rm -rf "$work"; restore_priority' EXIT
    trap 'exit 130' INT TERM
}
