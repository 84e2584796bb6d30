#!/usr/bin/env bash
# SyncAsync against Redis pub/sub and Mosquitto: the same sa-bench
# workloads, on the same machine, in one run, and a table with ratios.
#
#   bench/compare.sh [BUILD_DIR]     (default: build)
#
# BUILD_DIR must hold bin/syncasyncd, bin/sa-bench and the plugins beside
# them (a Release build: cmake -DCMAKE_BUILD_TYPE=Release); the script
# builds nothing. Redis and Mosquitto come from Debian packages: as root the
# script installs what is missing, otherwise it prints the apt-get line and
# leaves that peer out. Every server runs on loopback from its binary with
# a temporary configuration (never as a system service), pinned to CPU 0,
# and is restarted for every run; sa-bench is pinned to CPU 1.
#
# Workloads (B = 100-byte texts):
#   fanout S=100 P=1 and S=1000 P=10 flat out      deliveries/s (higher is better);
#          S=100 P=1 with windows of 256 and 4096 messages, S=1000 P=10
#          with 64 per sender; the server CPU table after the main one shows
#          which runs kept the server busy (at 256 neither SyncAsync nor
#          Redis is: the loop of send, fan out, deliver, reopen the window
#          is latency-bound there)
#   fanout S=100 P=1 paced at 1000 and 10000 msg/s p99 latency (lower is better)
#   chat: 2000 clients in 20 rooms, 2000 msg/s     p99 latency; SyncAsync only (the
#          sync engine's target; a peer would need two connections per client)
#   conns C=10000, and C=CONNS_BIG where it fits   server RSS per idle connection
#   files: FILE_MIB MiB uploaded, then downloaded   seconds each, SHA-256 checked, against
#          (sa-bench --workload files), both engines  socat into sha256sum over loopback
# Each one RUNS times (default 3), interleaved across servers; the table
# shows medians. Ratios compare each SyncAsync engine with the best peer
# (Redis or Mosquitto) and are oriented so that > 1 means SyncAsync is better.
#
# On a machine shared with other work, the results are only worth something
# if the servers and sa-bench get their CPUs when they want them: as root
# the script raises its session's scheduling priority (autogroup nice -20,
# restored at exit) and runs every server and sa-bench at nice -20.
# PRIORITY=0 turns that off.
#
# Environment: RUNS (3), DURATION (seconds of sending per fanout run, 5),
# CONNS_BIG (100000, lowered to what the open-file limit allows),
# TARGETS ("async sync redis mosquitto"), RESULTS (file for the raw
# summaries, default /tmp/sa-compare-DATE.jsonl), FILE_MIB (1024; 0 leaves
# the files workload out), WORKERS (the async engine's server.workers, 1:
# the targets are for one core).
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

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" 2>/dev/null && pwd) || {
    echo "compare: build folder ${1:-build} not found: build first" >&2
    exit 2
}
bench="$build/bin/sa-bench"
daemon="$build/bin/syncasyncd"
for program in "$bench" "$daemon"; do
    if [ ! -x "$program" ]; then
        echo "compare: $program is missing: cmake --build $build --target sa-bench syncasyncd" >&2
        exit 2
    fi
done
runs=${RUNS:-3}
duration=${DURATION:-5}
conns_big=${CONNS_BIG:-100000}
targets=${TARGETS:-async sync redis mosquitto}
priority=${PRIORITY:-1}
results=${RESULTS:-/tmp/sa-compare-$(date +%Y%m%d-%H%M%S).jsonl}
file_mib=${FILE_MIB:-1024}
workers=${WORKERS:-1}
case "$file_mib" in '' | *[!0-9]*)
    echo "compare: FILE_MIB must be a whole number" >&2
    exit 2
    ;;
esac
for n in "$runs" "$duration" "$conns_big" "$workers"; do
    case "$n" in
    '' | *[!0-9]* | 0)
        echo "compare: RUNS, DURATION, CONNS_BIG and WORKERS must be positive whole numbers" >&2
        exit 2
        ;;
    esac
done

# ---- peers: install from Debian when root, else say how ----------------------
missing=
for pair in redis-server:redis mosquitto:mosquitto; do
    command -v "${pair%%:*}" >/dev/null || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
    install_line="apt-get install -y redis-server redis-tools mosquitto mosquitto-clients"
    if [ "$(id -u)" = 0 ]; then
        echo "compare: installing$missing: $install_line" >&2
        DEBIAN_FRONTEND=noninteractive $install_line >&2 || true
    else
        echo "compare: missing$missing; as root run: $install_line" >&2
    fi
fi
available=
for t in $targets; do
    case "$t" in
    async | sync) available="$available $t" ;;
    redis) command -v redis-server >/dev/null && available="$available $t" ;;
    mosquitto) command -v mosquitto >/dev/null && available="$available $t" ;;
    *)
        echo "compare: unknown target $t (async, sync, redis, mosquitto)" >&2
        exit 2
        ;;
    esac
done
for t in $targets; do
    case " $available " in *" $t "*) ;; *) echo "compare: leaving $t out (not installed)" >&2 ;; esac
done

# ---- CPUs and limits ---------------------------------------------------------
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0)
    pin_bench=(taskset -c 1)
else
    echo "compare: fewer than 2 CPUs (or no taskset): servers and sa-bench are not pinned" >&2
    pin_server=()
    pin_bench=()
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
# Both ends of every connection are on this machine, one process each.
if [ "$fd_limit" != unlimited ] && [ "$conns_big" -gt $((fd_limit - 200)) ]; then
    echo "compare: the open-file limit is $fd_limit (hard): conns runs at most" \
        "$((fd_limit - 200)) instead of $conns_big" >&2
    conns_big=$((fd_limit - 200))
fi

# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
begin_run sa-compare

[ "$priority" = 0 ] || raise_priority
if [ "$priority" != 0 ] && [ ${#boost[@]} -eq 0 ]; then
    echo "compare: cannot raise the scheduling priority (not root?): other work on" \
        "this machine will show in the results" >&2
fi
pin_server=("${boost[@]}" "${pin_server[@]}")
pin_bench=("${boost[@]}" "${pin_bench[@]}")

log() { echo "compare: $*" >&2; }

# Starts target $1 on a fresh port: sets server_pid and server_port.
start_server() {
    server_port=$(free_port)
    local dir="$work/$1"
    mkdir -p "$dir"
    case "$1" in
    async | sync)
        mkdir -p "$dir/spool"
        "${pin_server[@]}" "$daemon" -c "$top/conf/syncasync.ini" -o "server.engine=$1" \
            -o "server.listen=127.0.0.1:$server_port" -o "server.plugins=chat rooms file" \
            -o chat.rate=0 -o rooms.auto_join= -o rooms.max_members=1000000 \
            -o "file.spool_dir=$dir/spool" \
            -o server.max_clients=1000000 -o server.log_level=warn -o "server.workers=$workers" \
            >"$dir/log" 2>&1 &
        ;;
    redis)
        cat >"$dir/redis.conf" <<EOF
port $server_port
bind 127.0.0.1
protected-mode no
daemonize no
save ""
appendonly no
maxclients 1000000
dir $dir
EOF
        "${pin_server[@]}" redis-server "$dir/redis.conf" >"$dir/log" 2>&1 &
        ;;
    mosquitto)
        cat >"$dir/mosquitto.conf" <<EOF
listener $server_port 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
log_dest stderr
log_type error
log_type warning
connection_messages false
EOF
        "${pin_server[@]}" mosquitto -c "$dir/mosquitto.conf" >"$dir/log" 2>&1 &
        ;;
    esac
    server_pid=$!
    if ! wait_listening "$server_port"; then
        log "$1 did not start; its log:"
        tail -5 "$dir/log" >&2
        stop_server
        return 1
    fi
}

# runs sa-bench against target $1 with label $2 and the remaining
# arguments; appends {"label":...,"run":N,...summary} to the results.
bench_run() {
    local target=$1 label=$2 run=$3
    shift 3
    local driver=$target
    case "$target" in async | sync) driver=syncasync ;; esac
    if ! start_server "$target"; then
        echo "{\"label\":\"$label\",\"server\":\"$target\",\"run\":$run,\"status\":1}" >>"$results"
        return
    fi
    local out
    out=$(timeout 120 "${pin_bench[@]}" "$bench" --target "$driver" --port "$server_port" \
        --server-pid "$server_pid" --json "$@" 2>"$work/bench.err" | tail -1) || true
    stop_server
    case "$out" in
    "{"*) ;;
    *)
        log "$label on $target gave no summary: $(tail -2 "$work/bench.err" | tr '\n' ' ')"
        out="{\"status\":1}"
        ;;
    esac
    echo "{\"label\":\"$label\",\"server\":\"$target\",\"run\":$run,${out#\{}" >>"$results"
    case "$label" in
    files*) log "$label on $target run $run: upload $(field "$out" upload_seconds) s," \
        "download $(field "$out" download_seconds) s, status $(field "$out" status)" ;;
    conns*) log "$label on $target run $run: $(field "$out" up) up," \
        "$(field "$out" rss_per_conn_kib) KiB per connection, status $(field "$out" status)" ;;
    *) log "$label on $target run $run: $(field "$out" deliveries_per_s) deliveries/s," \
        "p99 $(field "$out" p99_us) us, lost $(field "$out" lost), status $(field "$out" status)" ;;
    esac
}

# field JSON KEY: the value of a number member of flat JSON (or "").
field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}

# ---- the runs ------------------------------------------------------------------
big=1000000000 # -M: the runs end by --duration
workloads=(
    "fan100|deliveries/s, fanout S=100 P=1 flat out|deliveries_per_s|high|--workload fanout -S 100 -P 1 -B 100 -M $big --window 256 --duration $duration"
    "fan100w|deliveries/s, fanout S=100 P=1 flat out, window 4096|deliveries_per_s|high|--workload fanout -S 100 -P 1 -B 100 -M $big --window 4096 --duration $duration"
    "fan1000|deliveries/s, fanout S=1000 P=10 flat out|deliveries_per_s|high|--workload fanout -S 1000 -P 10 -B 100 -M $big --window 64 --duration $duration"
    "paced1k|p99 us, fanout S=100 paced 1000 msg/s|p99_us|low|--workload fanout -S 100 -P 1 -B 100 -M $big --rate 1000 --duration $duration"
    "paced10k|p99 us, fanout S=100 paced 10000 msg/s|p99_us|low|--workload fanout -S 100 -P 1 -B 100 -M $big --rate 10000 --duration $duration"
    "chat2000|p99 us, chat: 2000 clients, 20 rooms, 2000 msg/s|p99_us|low|--workload fanout -S 0 -P 2000 --rooms 20 --chat -B 100 -M $big --rate 2000 --duration $duration"
    "conns10k|KiB per idle connection, conns C=10000|rss_per_conn_kib|low|--workload conns -C 10000"
)
sync_conns=
if [ "$fd_limit" != unlimited ] && [ $((2 * 10000)) -gt $((fd_limit - 200)) ]; then
    sync_conns=$(((fd_limit - 200) / 2))
    log "the sync engine gets C=$sync_conns in conns10k: 2 descriptors per connection"
fi
if [ "$conns_big" -gt 10000 ]; then
    workloads+=("connsbig|KiB per idle connection, conns C=$conns_big|rss_per_conn_kib|low|--workload conns -C $conns_big")
fi

: >"$results"
log "results go to $results"
{
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
        "$(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)," \
        "priority boost: $([ ${#boost[@]} -gt 0 ] && echo on || echo off)"
    command -v redis-server >/dev/null && echo "redis: $(redis-server --version | cut -d' ' -f3)"
    command -v mosquitto >/dev/null && echo "mosquitto: $(mosquitto -h 2>/dev/null | sed -n '1s/.*version //p')"
    echo "syncasyncd: $("$daemon" --version 2>/dev/null | head -1)"
} | tee "$work/machine" >&2

for run in $(seq "$runs"); do
    for entry in "${workloads[@]}"; do
        IFS='|' read -r label _ _ _ args <<<"$entry"
        for target in $available; do
            # The sync engine runs a thread per connection: past 10000 it
            # is above its documented ceiling.
            if [ "$target" = sync ] && [ "$label" = connsbig ]; then
                continue
            fi
            case "$target:$label" in redis:chat* | mosquitto:chat*) continue ;; esac
            run_args=$args
            # The sync engine holds two descriptors per connection (its
            # socket and an eventfd): fewer connections fit the limit.
            if [ "$target" = sync ] && [ "$label" = conns10k ] && [ -n "$sync_conns" ]; then
                run_args="--workload conns -C $sync_conns"
            fi
            # shellcheck disable=SC2086 # run_args is a list of words
            bench_run "$target" "$label" "$run" $run_args
        done
    done
done

# ---- the table -------------------------------------------------------------------
# median LABEL TARGET KEY: the median over the runs with status 0 ("" if none).
median() {
    grep "\"label\":\"$1\",\"server\":\"$2\"," "$results" | grep '"status":0' |
        sed -n "s/.*\"$3\":\([-0-9.e+]*\).*/\1/p" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }' ||
        true
}
# lost_total LABEL TARGET: messages lost over all runs.
lost_total() {
    grep "\"label\":\"$1\",\"server\":\"$2\"," "$results" |
        sed -n 's/.*"lost":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }' || true
}

cols=""
for t in async sync redis mosquitto; do
    case " $available " in *" $t "*) cols="$cols $t" ;; esac
done
echo
cat "$work/machine"
echo "runs: $runs per cell (median shown), $duration s of sending per fanout run"
echo
header="| workload |"
rule="|---|"
for t in $cols; do
    case "$t" in async | sync) header="$header SyncAsync $t |" ;; *) header="$header $t |" ;; esac
    rule="$rule---:|"
done
cpu_header=$header
cpu_rule=$rule
for t in async sync; do
    case " $cols " in *" $t "*) header="$header $t vs best peer |" && rule="$rule---:|" ;; esac
done
echo "$header"
echo "$rule"
declare -A value
for entry in "${workloads[@]}"; do
    IFS='|' read -r label title key better _ <<<"$entry"
    row="| $title |"
    best=
    for t in $cols; do
        m=$(median "$label" "$t" "$key")
        value[$t]=$m
        cell=${m:-n/a}
        lost=$(lost_total "$label" "$t")
        [ "$lost" -gt 0 ] && cell="$cell (lost $lost)"
        row="$row $cell |"
        case "$t" in redis | mosquitto)
            [ -n "$m" ] || continue
            if [ -z "$best" ] || awk -v a="$m" -v b="$best" -v d="$better" \
                'BEGIN { exit !((d == "high") ? a > b : a < b) }'; then
                best=$m
            fi
            ;;
        esac
    done
    for t in async sync; do
        case " $cols " in *" $t "*) ;; *) continue ;; esac
        ratio=n/a
        if [ -n "${value[$t]}" ] && [ -n "$best" ]; then
            ratio=$(awk -v a="${value[$t]}" -v b="$best" -v d="$better" \
                'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.2f", (d == "high") ? a / b : b / a }')
        fi
        row="$row $ratio |"
    done
    echo "$row"
done
echo
if [ -n "$sync_conns" ] && [[ " $cols " == *" sync "* ]]; then
    echo "conns C=10000 on the sync engine ran with C=$sync_conns: it holds two descriptors"
    echo "per connection, and the open-file limit here is $fd_limit."
fi
echo "ratios: SyncAsync / best peer for deliveries/s; best peer / SyncAsync for latency"
echo "and memory; so > 1 always means SyncAsync is better. Raw summaries: $results"
echo
echo "server CPU, % of its core (median; softirq work the kernel does not charge"
echo "to the process is not included):"
echo
echo "$cpu_header"
echo "$cpu_rule"
for entry in "${workloads[@]}"; do
    IFS='|' read -r label title key _ <<<"$entry"
    [ "$key" = deliveries_per_s ] || continue
    row="| $title |"
    for t in $cols; do
        m=$(median "$label" "$t" server_cpu_pct)
        row="$row ${m:-n/a} |"
    done
    echo "$row"
done

# ---- files: sa-bench --workload files against socat | sha256sum ------------------
# socat_run RUN: FILE_MIB MiB of random bytes over a loopback TCP connection
# into sha256sum, timed from the first byte sent to the hash printed.
socat_run() {
    local port sha start end
    port=$(free_port)
    ("${pin_server[@]}" socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" - |
        "${pin_server[@]}" sha256sum >"$work/socat.sha") &
    local listener=$!
    for _ in $(seq 100); do
        ss -Htln "sport = :$port" 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    start=$(date +%s.%N)
    "${pin_bench[@]}" socat -u "FILE:$work/socat.data" "TCP:127.0.0.1:$port"
    wait "$listener"
    end=$(date +%s.%N)
    sha=$(cut -d' ' -f1 "$work/socat.sha")
    if [ "$sha" = "$socat_want" ]; then
        echo "{\"label\":\"files\",\"server\":\"socat\",\"run\":$1,\"seconds\":$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'),\"status\":0}" >>"$results"
    else
        log "socat run $1: the SHA-256 does not match"
    fi
}
syncasync_targets=
for t in async sync; do
    case " $available " in *" $t "*) syncasync_targets="$syncasync_targets $t" ;; esac
done
if [ "$file_mib" -gt 0 ] && [ -n "$syncasync_targets" ]; then
    have_socat=
    if command -v socat >/dev/null; then
        have_socat=1
        head -c "$((file_mib * 1048576))" /dev/urandom >"$work/socat.data"
        socat_want=$(sha256sum "$work/socat.data" | cut -d' ' -f1)
    else
        log "socat is not installed (apt-get install -y socat): no files baseline"
    fi
    for run in $(seq "$runs"); do
        [ -n "$have_socat" ] && socat_run "$run"
        for target in $syncasync_targets; do
            bench_run "$target" files "$run" --workload files --mib "$file_mib"
        done
    done
    rm -f "$work/socat.data"
    base=$(grep '"server":"socat"' "$results" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' |
        sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
    echo
    echo "files: $file_mib MiB, seconds (median of $runs), SHA-256 checked; ratio = socat's"
    echo "time / this time, so >= 1.5 meets the target of two thirds of socat's time"
    echo
    echo "| transfer | seconds | MiB/s | socat / this |"
    echo "|---|---:|---:|---:|"
    [ -n "$base" ] && echo "| socat -> sha256sum | $base | $(awk -v s="$base" -v m="$file_mib" 'BEGIN { printf "%.0f", m / s }') | 1.00 |"
    for target in $syncasync_targets; do
        for dir in upload download; do
            s=$(median files "$target" "${dir}_seconds")
            [ -n "$s" ] || continue
            ratio=n/a
            [ -n "$base" ] && ratio=$(awk -v a="$base" -v b="$s" 'BEGIN { printf "%.2f", a / b }')
            echo "| $dir, $target engine | $s | $(awk -v s="$s" -v m="$file_mib" 'BEGIN { printf "%.0f", m / s }') | $ratio |"
        done
    done
fi
