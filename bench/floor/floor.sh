#!/usr/bin/env bash
# The machine's floor: sa-floor (one write per delivery), sa-floor --batch
# (one write per socket per epoll turn), syncasyncd's async engine and,
# optionally, Redis under the same sa-bench workloads, interleaved.
#
#   bench/floor/floor.sh [BUILD_DIR]     (default: build; a Release build
#                                         holding bin/sa-floor, bin/sa-bench,
#                                         bin/syncasyncd and its plugins)
#
# Workloads (B = 100-byte texts, DURATION seconds of sending each):
#   paced1k   fanout S=100 P=1 at 1 000 msg/s
#   paced10k  fanout S=100 P=1 at 10 000 msg/s
#   chat      2 000 clients in 20 rooms (--chat) at 2 000 msg/s (not redis)
#   flat100   fanout S=100 P=1 flat out, window 256 (opt-in: add it to WORKLOADS)
# Every server is restarted for every run and pinned to CPU 0, sa-bench to
# CPU 1; as root both run at nice -20 with the session's autogroup at -20
# (PRIORITY=0 turns that off). One line per run: p50 and p99 (µs, arrival
# on the socket), deliveries/s, server and sa-bench CPU, and the load
# average before it.
#
# Environment: RUNS (3), DURATION (10), TARGETS ("floor floor-batch async";
# "redis" as well needs redis-server),
# WORKLOADS ("paced1k paced10k chat"), RESULTS (file for the raw sa-bench
# summaries, default /tmp/sa-floor-DATE.jsonl).
set -euo pipefail

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
esac
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" 2>/dev/null && pwd) || {
    echo "floor: build folder ${1:-build} not found" >&2
    exit 2
}
for program in sa-floor sa-bench syncasyncd; do
    if [ ! -x "$build/bin/$program" ]; then
        echo "floor: $build/bin/$program is missing: cmake --build $build" >&2
        exit 2
    fi
done
runs=${RUNS:-3}
duration=${DURATION:-10}
targets=${TARGETS:-floor floor-batch async}
workloads=${WORKLOADS:-paced1k paced10k chat}
results=${RESULTS:-/tmp/sa-floor-$(date +%Y%m%d-%H%M%S).jsonl}
ulimit -n 20000

# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
begin_run sa-floor

[ "${PRIORITY:-1}" = 0 ] || raise_priority
pin_server=("${boost[@]}" taskset -c 0)
pin_bench=("${boost[@]}" taskset -c 1)

start_server() {
    port=$(free_port)
    case "$1" in
    floor) "${pin_server[@]}" "$build/bin/sa-floor" --listen "127.0.0.1:$port" 2>"$work/log" & ;;
    floor-batch)
        "${pin_server[@]}" "$build/bin/sa-floor" --batch --listen "127.0.0.1:$port" \
            2>"$work/log" &
        ;;
    async)
        mkdir -p "$work/spool"
        "${pin_server[@]}" "$build/bin/syncasyncd" -c "$top/conf/syncasync.ini" \
            -o server.engine=async -o "server.listen=127.0.0.1:$port" \
            -o "server.plugins=chat rooms file" -o chat.rate=0 -o rooms.auto_join= \
            -o rooms.max_members=1000000 -o "file.spool_dir=$work/spool" \
            -o server.max_clients=1000000 -o server.log_level=warn >"$work/log" 2>&1 &
        ;;
    redis)
        "${pin_server[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --protected-mode no --maxclients 100000 >"$work/log" 2>&1 &
        ;;
    *)
        echo "floor: unknown target $1 (floor, floor-batch, async, redis)" >&2
        exit 2
        ;;
    esac
    server_pid=$!
    wait_listening "$port"
}

field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}

for run in $(seq "$runs"); do
    for workload in $workloads; do
        case "$workload" in
        paced1k) args=(-S 100 -P 1 -M 1000000 --rate 1000) ;;
        paced10k) args=(-S 100 -P 1 -M 1000000 --rate 10000) ;;
        chat) args=(-S 0 -P 2000 --rooms 20 --chat -M 100000 --rate 2000) ;;
        flat100) args=(-S 100 -P 1 -M 1000000000 --window 256) ;;
        *)
            echo "floor: unknown workload $workload (paced1k, paced10k, chat, flat100)" >&2
            exit 2
            ;;
        esac
        for target in $targets; do
            [ "$target:$workload" != redis:chat ] || continue # --chat is ours only
            load=$(cut -d' ' -f1-3 /proc/loadavg)
            if ! start_server "$target"; then
                echo "floor: $target did not start: $(tail -2 "$work/log")" >&2
                stop_server
                continue
            fi
            protocol=syncasync
            [ "$target" != redis ] || protocol=redis
            out=$(timeout 120 "${pin_bench[@]}" "$build/bin/sa-bench" --target "$protocol" \
                --port "$port" \
                --server-pid "$server_pid" --json --workload fanout -B 100 \
                --duration "$duration" "${args[@]}" 2>"$work/bench.err" | tail -1) || true
            stop_server
            case "$out" in "{"*) ;; *) out="{\"status\":1}" ;; esac
            echo "{\"target\":\"$target\",\"case\":\"$workload\",\"run\":$run,\"load\":\"$load\",${out#\{}" >>"$results"
            printf '%-9s %-11s run %s  %9s deliveries/s  p50 %9s us  p99 %9s us  server %5s %%  sa-bench %5s %%  lost %s  load %s\n' \
                "$workload" "$target" "$run" "$(field "$out" deliveries_per_s)" \
                "$(field "$out" p50_us)" "$(field "$out" p99_us)" \
                "$(field "$out" server_cpu_pct)" "$(field "$out" bench_cpu_pct)" \
                "$(field "$out" lost)" "$load"
        done
    done
done
echo "floor: raw summaries in $results" >&2
