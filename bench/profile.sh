#!/usr/bin/env bash
# Where syncasyncd's time goes under one sa-bench workload: perf samples the
# server (CPU clock, call graphs) while sa-bench runs, then prints the
# functions that took the most time, by themselves and with their callees.
#
#   bench/profile.sh [BUILD_DIR] [ENGINE] [SA-BENCH ARGS...]
#
# BUILD_DIR defaults to build, ENGINE (async or sync) to async, the
# sa-bench arguments to the flat-out fanout of bench/compare.sh:
#   --workload fanout -S 100 -P 1 -B 100 -M 1000000000 --window 256 --duration 5
# Pinning and priority are those of bench/compare.sh (server on CPU 0,
# sa-bench on CPU 1, nice -20 as root). Needs perf (linux-perf); when perf
# cannot sample here, it says so and stops. The profile is kept in
# /tmp/sa-profile-ENGINE.data for `perf report -i`.
set -euo pipefail

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
esac
build=$(cd "${1:-build}" 2>/dev/null && pwd) || {
    echo "profile: build folder ${1:-build} not found" >&2
    exit 2
}
engine=${2:-async}
shift $(($# >= 2 ? 2 : $#))
case "$engine" in async | sync) ;; *)
    echo "profile: ENGINE is async or sync" >&2
    exit 2
    ;;
esac
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(--workload fanout -S 100 -P 1 -B 100 -M 1000000000 --window 256 --duration 5)
fi
top=$(cd "$(dirname "$0")/.." && pwd)
command -v perf >/dev/null || {
    echo "profile: perf is not installed (apt-get install -y linux-perf)" >&2
    exit 1
}
if ! perf record -e cpu-clock -o /dev/null true >/dev/null 2>&1; then
    echo "profile: perf cannot sample on this machine (perf_event_paranoid?)" >&2
    exit 1
fi

boost=()
[ "$(nice -n -20 nice 2>/dev/null)" = -20 ] && boost=(nice -n -20)
pin_server=("${boost[@]}")
pin_bench=("${boost[@]}")
if [ "$(nproc)" -ge 2 ]; then
    pin_server+=(taskset -c 0)
    pin_bench+=(taskset -c 1)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/sa-profile.XXXXXX")
data=/tmp/sa-profile-$engine.data
daemon_pid=
perf_pid=
cleanup() {
    for pid in $perf_pid $daemon_pid; do
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$((20000 + RANDOM % 12000))
"${pin_server[@]}" "$build/bin/syncasyncd" -c "$top/conf/syncasync.ini" \
    -o "server.engine=$engine" -o "server.listen=127.0.0.1:$port" \
    -o "server.plugins=chat rooms" -o chat.rate=0 -o rooms.auto_join= \
    -o server.max_clients=1000000 -o server.log_level=warn >"$work/log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    ss -Htln "sport = :$port" | grep -q . && break
    sleep 0.1
done
perf record -e cpu-clock -F 1999 -g -p "$daemon_pid" -o "$data" >"$work/perf.log" 2>&1 &
perf_pid=$!
sleep 0.5
"${pin_bench[@]}" "$build/bin/sa-bench" --port "$port" --server-pid "$daemon_pid" "${args[@]}"
kill -INT "$perf_pid"
wait "$perf_pid" || true
perf_pid=
echo
echo "== self time (top 25)"
perf report -i "$data" --no-children --sort symbol --percent-limit 0.8 --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -25
echo
echo "== with callees (top 25)"
perf report -i "$data" --children --sort symbol --percent-limit 2 --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -25
