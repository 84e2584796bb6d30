#!/usr/bin/env bash
# File transfer throughput over loopback: sa-send and sa-recv through
# syncasyncd (each engine, each client mode) against the same bytes piped
# through socat (or nc) into sha256sum.
#
#   bench/file_bench.sh [BUILD_DIR]     (default: build)
#
# BUILD_DIR must hold bin/syncasyncd, bin/sa-send and bin/sa-recv (and the
# plugins beside them): the script builds nothing. It works in a temporary
# folder (removed at exit) and writes nothing into the repository.
# SA_BENCH_MIB sets the file size in MiB (default 1024).
#
# Every timing includes SHA-256 checking: sa-send hashes the file before
# uploading and the server checks it at file_end; sa-recv checks what it
# wrote; the baseline hashes on the receiving side.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
esac
if [ $# -gt 1 ]; then
    usage >&2
    exit 2
fi

build=${1:-build}
bin="$build/bin"
for program in syncasyncd sa-send sa-recv; do
    if [ ! -x "$bin/$program" ]; then
        echo "file_bench: $bin/$program is missing: build first (cmake --build $build)" >&2
        exit 2
    fi
done
conf="$(cd "$(dirname "$0")/.." && pwd)/conf/syncasync.ini"
mib=${SA_BENCH_MIB:-1024}
case "$mib" in
'' | *[!0-9]* | 0)
    echo "file_bench: SA_BENCH_MIB must be a positive whole number" >&2
    exit 2
    ;;
esac
if command -v socat >/dev/null; then
    pipe_tool=socat
elif command -v nc >/dev/null; then
    pipe_tool=nc
else
    echo "file_bench: needs socat or nc for the baseline (apt-get install -y socat)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/syncasync-file-bench.XXXXXX")
daemon_pid=
listener_pid=
cleanup() {
    for pid in $daemon_pid $listener_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# seconds between two `now` values
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v s="$1" -v mib="$mib" 'BEGIN { printf "%.0f", mib / s }'; }
ratio() { awk -v r="$1" -v base="$2" 'BEGIN { printf "%.2f", r / base }'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "file_bench: making $mib MiB of random bytes in $work" >&2
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/data"
want=$(sha256sum "$work/data" | cut -d' ' -f1)

# ---- baseline: the bytes over a loopback TCP connection into sha256sum ----
baseline() { # sets base_s
    local attempt port got t0 t1
    for attempt in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        if [ "$pipe_tool" = socat ]; then
            (socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" - | sha256sum >"$work/pipe.sha") &
        else
            (nc -l 127.0.0.1 "$port" | sha256sum >"$work/pipe.sha") &
        fi
        listener_pid=$!
        sleep 0.3
        # A port in use makes the listener end at once: try another.
        if kill -0 "$listener_pid" 2>/dev/null; then
            break
        fi
        wait "$listener_pid" 2>/dev/null || true
        listener_pid=
    done
    if [ -z "$listener_pid" ]; then
        echo "file_bench: no free port for the baseline" >&2
        exit 1
    fi
    t0=$(now)
    if [ "$pipe_tool" = socat ]; then
        socat -u "FILE:$work/data" "TCP:127.0.0.1:$port"
    else
        nc -N 127.0.0.1 "$port" <"$work/data"
    fi
    wait "$listener_pid"
    listener_pid=
    t1=$(now)
    got=$(cut -d' ' -f1 "$work/pipe.sha")
    if [ "$got" != "$want" ]; then
        echo "file_bench: the baseline received other bytes ($got)" >&2
        exit 1
    fi
    base_s=$(elapsed "$t0" "$t1")
}

# ---- syncasyncd -------------------------------------------------------------
start_daemon() { # ENGINE; sets daemon_pid and port
    local engine=$1 log="$work/syncasyncd-$1.log" tries
    mkdir -p "$work/spool-$engine"
    "$bin/syncasyncd" -c "$conf" -o "server.engine=$engine" -o server.listen=127.0.0.1:0 \
        -o "server.plugins=chat rooms presence file" -o "file.spool_dir=$work/spool-$engine" \
        2>"$log" &
    daemon_pid=$!
    port=
    for tries in $(seq 100); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
        [ -n "$port" ] && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "file_bench: syncasyncd ($engine) did not start:" >&2
    cat "$log" >&2
    exit 1
}

stop_daemon() {
    kill "$daemon_pid"
    wait "$daemon_pid" || true
    daemon_pid=
}

# ENGINE MODE: sets send_s and recv_s
transfer() {
    local engine=$1 mode=$2 user="bench-$2" dir="$work/recv-$1-$2" line file_id t0 t1 t2 t3
    mkdir -p "$dir"
    t0=$(now)
    line=$("$bin/sa-send" --port "$port" --name "$user" --mode "$mode" "$work/data" \
        2>>"$work/tools.log")
    t1=$(now)
    file_id=${line%% *}
    if [ "$(echo "$line" | cut -d' ' -f2)" != "$want" ]; then
        echo "file_bench: sa-send printed \"$line\", expected the SHA-256 $want" >&2
        exit 1
    fi
    # The name is free again once the server has seen sa-send go.
    sleep 0.5
    t2=$(now)
    line=$("$bin/sa-recv" --port "$port" --name "$user" --mode "$mode" --id "$file_id" \
        --dir "$dir" 2>>"$work/tools.log")
    t3=$(now)
    if [ "${line%% *}" != "$want" ] || [ "$(sha256sum "$dir/data" | cut -d' ' -f1)" != "$want" ]; then
        echo "file_bench: sa-recv printed \"$line\"; the file does not match" >&2
        exit 1
    fi
    rm -rf "$dir"
    send_s=$(elapsed "$t0" "$t1")
    recv_s=$(elapsed "$t2" "$t3")
}

echo "file_bench: baseline ($pipe_tool into sha256sum)" >&2
baseline
base_rate=$(rate "$base_s")

results=()
for engine in sync async; do
    start_daemon "$engine"
    for mode in sync async; do
        echo "file_bench: engine $engine, client mode $mode" >&2
        transfer "$engine" "$mode"
        results+=("$engine $mode $send_s $recv_s")
    done
    stop_daemon
    rm -rf "$work/spool-$engine"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo
echo "file: $mib MiB; $(nproc) CPUs ($cpu); $(date -u '+%Y-%m-%d %H:%M UTC')"
# The machine may be shared: its load says how far to trust the figures.
echo "load average (1, 5, 15 min): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
printf '| %-28s | %-6s | %8s | %7s | %10s |\n' "transfer" "client" "seconds" "MiB/s" "vs. $pipe_tool"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------" "--------" "----------" "---------" "------------"
printf '| %-28s | %-6s | %8s | %7s | %10s |\n' "$pipe_tool -> sha256sum" "-" "$base_s" "$base_rate" "1.00"
for r in "${results[@]}"; do
    read -r engine mode send_s recv_s <<<"$r"
    send_rate=$(rate "$send_s")
    recv_rate=$(rate "$recv_s")
    printf '| %-28s | %-6s | %8s | %7s | %10s |\n' "sa-send, $engine engine" "$mode" "$send_s" \
        "$send_rate" "$(ratio "$send_rate" "$base_rate")"
    printf '| %-28s | %-6s | %8s | %7s | %10s |\n' "sa-recv, $engine engine" "$mode" "$recv_s" \
        "$recv_rate" "$(ratio "$recv_rate" "$base_rate")"
done
