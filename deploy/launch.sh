#!/usr/bin/env bash
# Quiver as a local multi-process cluster, the way a Dash + Dask deployment is
# run on one machine: N worker processes, each loading its shard of the data from
# a directory (or an S3-compatible server), M stateless dashboard processes, and
# nginx load-balancing across the dashboards on one port, moving a request to
# the next dashboard when one is down.
#
#   deploy/launch.sh [--workers N] [--replicas R] [--dashboards M] [--port 8080] [--rows R] [--data DIR] [--s3]
#
# Everything listens on 127.0.0.1. Logs, pids, generated configs and secrets go
# under one run folder; Ctrl-C (or SIGTERM) stops every process it started.
# `deploy/launch.sh --help` lists all options.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$script_dir/.." && pwd)

usage() {
  cat <<EOF
usage: deploy/launch.sh [options]

Starts N quiver-worker processes (worker i loads shard i of N; with --replicas R,
N x R processes and worker i loads shard i mod N), M quiver-dashboard
processes in front of them, and nginx on 127.0.0.1:PORT balancing across the
dashboards. Prints one status line with the URL and the token when all is ready.

options:
  --workers N       shards: worker processes per replica set (default 2)
  --replicas R      replicas per shard (default 1): N x R worker processes, each
                    shard held by R of them; the dashboards ask one replica per
                    shard and retry or hedge on another
  --dashboards M    dashboard processes behind nginx (default 2)
  --port P          nginx port on 127.0.0.1 (default 8080)
  --rows R          cell-tower rows to generate when the data is absent (default 10000000)
  --ais-rows R      AIS rows to generate when absent (default 3/10 of --rows)
  --data DIR        data directory: DIR/celltowers/ and DIR/ais/ (default ./quiver-data,
                    shared with 'quiver-dashboard demo'); files you put there are used as they are
  --s3              serve the data from a local S3-compatible server (moto, from pip:
                    pip install 'moto[server]') instead of reading the directory
  --run-dir DIR     where logs, pids and generated configs go
                    (default target/launch/<date-time>)
  --token T         login token (default: \$QUIVER_DASHBOARD_TOKEN, else random)
  --debug           use (and build) the debug binaries instead of release
  --no-build        do not run cargo; use the binaries already in target/
  --bin-dir DIR     take quiver-worker and quiver-dashboard from DIR (implies --no-build)
  --timeout SECS    how long to wait for everything to be ready (default 900)
  --worker-timeout D  the dashboards' per-worker deadline, e.g. 2s (default 5s)
  -h, --help        this text

Files in the run folder: logs/ (one log per process, nginx's access log shows
which dashboard answered each request), pids ("role index pid" per line),
cluster.env (URLs for scripts), nginx/nginx.conf, secrets/ (mode 700).
EOF
}

die() { printf 'launch.sh: %s\n' "$*" >&2; exit 2; }
say() { printf 'quiver: %s\n' "$*" >&2; }

workers=2 replicas=1 dashboards=2 port=8080 rows=10000000 ais_rows="" data="" s3=0
run_dir="" token="${QUIVER_DASHBOARD_TOKEN:-}" profile=release build=1 bin_dir="" timeout=900 worker_timeout=5s
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --replicas) replicas=${2:?--replicas needs a number}; shift 2 ;;
    --dashboards) dashboards=${2:?--dashboards needs a number}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --rows) rows=${2:?--rows needs a number}; shift 2 ;;
    --ais-rows) ais_rows=${2:?--ais-rows needs a number}; shift 2 ;;
    --data) data=${2:?--data needs a directory}; shift 2 ;;
    --s3) s3=1; shift ;;
    --run-dir) run_dir=${2:?--run-dir needs a directory}; shift 2 ;;
    --token) token=${2:?--token needs a value}; shift 2 ;;
    --debug) profile=debug; shift ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; build=0; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --worker-timeout) worker_timeout=${2:?--worker-timeout needs a duration}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
is_count "$workers" 1 256 || die "--workers must be a whole number from 1 to 256, not '$workers'"
is_count "$replicas" 1 16 || die "--replicas must be a whole number from 1 to 16, not '$replicas'"
procs=$(( workers * replicas ))
is_count "$procs" 1 256 || die "--workers x --replicas must be at most 256 worker processes, not $procs"
is_count "$dashboards" 1 64 || die "--dashboards must be a whole number from 1 to 64, not '$dashboards'"
is_count "$port" 1 65535 || die "--port must be a port number (1-65535), not '$port'"
is_count "$rows" 1 100000000000 || die "--rows must be a positive whole number, not '$rows'"
is_count "$timeout" 1 86400 || die "--timeout must be a number of seconds, not '$timeout'"
[[ $worker_timeout =~ ^[0-9]+(ms|s|m)$ ]] || die "--worker-timeout must be a duration like 500ms, 2s or 1m, not '$worker_timeout'"
[ -n "$ais_rows" ] || ais_rows=$(( rows * 3 / 10 > 0 ? rows * 3 / 10 : 1 ))
is_count "$ais_rows" 1 100000000000 || die "--ais-rows must be a positive whole number, not '$ais_rows'"
[ -n "$token" ] || token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
[[ $token =~ ^[[:graph:]]{8,}$ ]] || die "the token must be at least 8 printable characters without spaces"

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need curl "apt-get install curl"
nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; } \
  || die "nginx not found: apt-get install nginx (then 'service nginx stop' so it frees port 80)"

# ---------------------------------------------------------------- binaries ---
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ -z "$bin_dir" ]; then
  bin_dir="$target_dir/$profile"
  if [ "$build" = 1 ]; then
    need cargo "install Rust from rustup.rs, or pass --bin-dir"
    flags=(); [ "$profile" = release ] && flags=(--release)
    say "building quiver-worker and quiver-dashboard ($profile; a first release build takes minutes)"
    (cd "$root" && cargo build "${flags[@]}" -p quiver-worker -p quiver-dashboard --bins) \
      || die "cargo build failed"
  fi
fi
worker_bin="$bin_dir/quiver-worker"
dashboard_bin="$bin_dir/quiver-dashboard"
for b in "$worker_bin" "$dashboard_bin"; do
  [ -x "$b" ] || die "$b not found: build it (drop --no-build) or pass --bin-dir"
done

# ---------------------------------------------------------------- run dir ---
[ -n "$run_dir" ] || run_dir="$target_dir/launch/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$run_dir"/{logs,nginx/tmp,secrets}
run_dir=$(cd "$run_dir" && pwd)
logs="$run_dir/logs"
chmod 700 "$run_dir/secrets"
(umask 077; printf '%s' "$token" >"$run_dir/secrets/dashboard-token"
 od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$run_dir/secrets/worker-token")
: >"$run_dir/pids"

# ---------------------------------------------------------------- children ---
# Logs go to files: no colour escapes in them.
export NO_COLOR=1
# role index pid, in start order; stopped in reverse order.
roles=() indexes=() pids=() gone=()
stopping=0

started() { # role index pid
  roles+=("$1"); indexes+=("$2"); pids+=("$3"); gone+=(0)
  printf '%s %s %s\n' "$1" "$2" "$3" >>"$run_dir/pids"
}

stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  local i pid deadline alive
  [ ${#pids[@]} -gt 0 ] || return 0
  say "stopping ${#pids[@]} processes"
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  deadline=$(( $(date +%s) + 15 ))
  while :; do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "killing ${#alive[@]} processes that did not stop within 15 s: ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait 2>/dev/null || true
  say "stopped; logs in $logs"
}

on_signal() { trap - INT TERM EXIT; stop_all; exit 0; }
on_exit() { local rc=$?; trap - INT TERM EXIT; stop_all; exit "$rc"; }
trap on_signal INT TERM
trap on_exit EXIT

fail() { # message [log to show]
  say "FAILED: $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    say "last lines of $2:"
    tail -n 20 "$2" | sed 's/^/    /' >&2
  fi
  exit 1
}

# N distinct free TCP ports on 127.0.0.1, below the kernel's ephemeral range:
# a port taken from that range (bind to port 0) can be grabbed again as the
# source port of any outgoing connection before our process binds it.
free_ports() {
  local n=$1 low=32768 hi out=() p tries=0
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  hi=$(( low - 1 )); low=$(( hi - 10000 > 1024 ? hi - 10000 : 1024 ))
  while [ ${#out[@]} -lt "$n" ]; do
    tries=$(( tries + 1 ))
    [ "$tries" -le 10000 ] || die "found no free port between $low and $hi"
    p=$(( low + (RANDOM * 32768 + RANDOM) % (hi - low + 1) ))
    [[ " ${out[*]} " == *" $p "* ]] && continue
    if command -v python3 >/dev/null 2>&1; then
      python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" \
        2>/dev/null || continue
    else
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    fi
    out+=("$p")
  done
  echo "${out[*]}"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_in_use "$port" && die "port $port on 127.0.0.1 is in use; pick another with --port"

# wait_ready NAME URL PID LOG: until URL answers 200, the process dies, or the deadline.
deadline=$(( $(date +%s) + timeout ))
wait_ready() {
  local name=$1 url=$2 pid=$3 log=$4 code
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name exited before it was ready" "$log"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name not ready after ${timeout} s ($url answers ${code:-nothing})" "$log"
    sleep 0.3
  done
}

# ---------------------------------------------------------------- data ---
[ -n "$data" ] || data="$root/quiver-data"
mkdir -p "$data"
data=$(cd "$data" && pwd)
worker_s3=()
# Same marker as `quiver-dashboard demo`, so both reuse each other's data.
marker=_quiver_demo.json

# Files to generate for ROWS rows: about 4M rows each, a multiple of the worker
# count so that every shard gets the same number of whole files.
files_for() {
  local n=$1 per
  per=$(( (n + 4000000 * workers - 1) / (4000000 * workers) ))
  [ "$per" -ge 1 ] || per=1
  local f=$(( per * workers ))
  [ "$f" -le "$n" ] || f=$n
  echo "$f"
}

# ensure_local PRESET ROWS: DIR/PRESET holds data (generated, or the user's files).
ensure_local() {
  local preset=$1 n=$2 dir="$data/$1" files had
  mkdir -p "$dir"
  if [ -f "$dir/$marker" ]; then
    had=$(grep -o '"rows": *[0-9]*' "$dir/$marker" | grep -o '[0-9]*$' || true)
    [ "$had" = "$n" ] || say "$preset: using the ${had:-?} rows already in $dir (delete it to generate $n)"
    return 0
  fi
  if find "$dir" -maxdepth 1 -type f \( -name '*.parquet' -o -name '*.csv' -o -name '*.csv.gz' \) ! -name 'part-*' | grep -q .; then
    say "$preset: using the files in $dir"
    return 0
  fi
  files=$(files_for "$n")
  say "$preset: generating $n rows into $dir ($files files)"
  local progress=(--no-progress); [ -t 2 ] && progress=()
  "$worker_bin" gen "$preset" --rows "$n" --files "$files" --out "file://$dir/" "${progress[@]}" \
    >>"$logs/gen-$preset.log" 2>&1 || fail "generating $preset" "$logs/gen-$preset.log"
  printf '{"rows":%s,"preset":"%s","seed":42}\n' "$n" "$preset" >"$dir/$marker"
}

if [ "$s3" = 1 ]; then
  python3 -c 'import moto.server' 2>/dev/null \
    || die "--s3 needs an S3-compatible server: pip install 'moto[server]' (or run without --s3)"
  read -r s3_port < <(free_ports 1)
  export AWS_ACCESS_KEY_ID=quiver-local AWS_SECRET_ACCESS_KEY=quiver-local-secret AWS_REGION=us-east-1
  python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$logs/s3.log" 2>&1 &
  started s3 0 $!
  s3_url="http://127.0.0.1:$s3_port"
  deadline_s3=$(( $(date +%s) + 60 ))
  until curl -s -o /dev/null --max-time 2 "$s3_url/"; do
    kill -0 "${pids[-1]}" 2>/dev/null || fail "the S3 server exited" "$logs/s3.log"
    [ "$(date +%s)" -lt "$deadline_s3" ] || fail "the S3 server did not start" "$logs/s3.log"
    sleep 0.3
  done
  curl -sf -X PUT "$s3_url/quiver" -o /dev/null || fail "cannot create bucket quiver on $s3_url" "$logs/s3.log"
  worker_s3=(--s3-endpoint "$s3_url" --s3-allow-http --s3-region us-east-1)
  say "S3 server on $s3_url (bucket quiver, in memory)"
  for spec in "celltowers $rows" "ais $ais_rows"; do
    set -- $spec
    files=$(files_for "$2")
    say "$1: generating $2 rows into s3://quiver/$1/"
    "$worker_bin" gen "$1" --rows "$2" --files "$files" --out "s3://quiver/$1/" --no-progress "${worker_s3[@]}" \
      >>"$logs/gen-$1.log" 2>&1 || fail "generating $1 into S3" "$logs/gen-$1.log"
  done
  celltowers_url="s3://quiver/celltowers/"
  ais_url="s3://quiver/ais/"
else
  ensure_local celltowers "$rows"
  ensure_local ais "$ais_rows"
  celltowers_url="file://$data/celltowers/"
  ais_url="file://$data/ais/"
fi

# ---------------------------------------------------------------- workers ---
read -r -a ports < <(free_ports $(( 2 * procs + dashboards )))
flight_urls=() http_urls=()
for (( i=0; i<procs; i++ )); do
  fp=${ports[$(( 2 * i ))]} hp=${ports[$(( 2 * i + 1 ))]}
  "$worker_bin" serve \
    --flight-addr "127.0.0.1:$fp" --http-addr "127.0.0.1:$hp" \
    --shard-index "$(( i % workers ))" --shards "$workers" \
    --token-file "$run_dir/secrets/worker-token" \
    --dataset "celltowers=celltowers:$celltowers_url" \
    --dataset "ais=ais:$ais_url" \
    "${worker_s3[@]}" >"$logs/worker-$i.log" 2>&1 &
  started worker "$i" $!
  flight_urls+=("http://127.0.0.1:$fp")
  http_urls+=("http://127.0.0.1:$hp")
done

# ---------------------------------------------------------------- dashboards ---
workers_csv=$(IFS=,; echo "${flight_urls[*]}")
dashboard_urls=()
for (( j=0; j<dashboards; j++ )); do
  dp=${ports[$(( 2 * procs + j ))]}
  "$dashboard_bin" serve \
    --addr "127.0.0.1:$dp" \
    --workers "$workers_csv" \
    --token-file "$run_dir/secrets/dashboard-token" \
    --worker-token-file "$run_dir/secrets/worker-token" \
    --worker-timeout "$worker_timeout" \
    --trust-proxy >"$logs/dashboard-$j.log" 2>&1 &
  started dashboard "$j" $!
  dashboard_urls+=("http://127.0.0.1:$dp")
done

# ---------------------------------------------------------------- nginx ---
conf="$run_dir/nginx/nginx.conf"
{
  echo "# Generated by deploy/launch.sh for this run only."
  echo "# nginx -p $run_dir/nginx/ -e $logs/nginx-error.log -c $conf"
  # As root, nginx would switch its workers to 'nobody'; keep the invoking user.
  [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
  cat <<EOF
daemon off;
worker_processes 1;
pid $run_dir/nginx/nginx.pid;
error_log $logs/nginx-error.log notice;

events {
    worker_connections 1024;
}

http {
    log_format upstreams '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent '
                         '\$request_time upstream=\$upstream_addr upstream_status=\$upstream_status';
    access_log $logs/nginx-access.log upstreams;
    client_body_temp_path $run_dir/nginx/tmp/client_body;
    proxy_temp_path $run_dir/nginx/tmp/proxy;
    fastcgi_temp_path $run_dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $run_dir/nginx/tmp/uwsgi;
    scgi_temp_path $run_dir/nginx/tmp/scgi;
    client_max_body_size 1m;
    server_tokens off;

    # The dashboards are stateless (sessions are signed cookies every replica
    # verifies), so plain round robin works; a replica that fails is skipped
    # for fail_timeout.
    upstream quiver_dashboards {
EOF
  for u in "${dashboard_urls[@]}"; do
    echo "        server ${u#http://} max_fails=1 fail_timeout=10s;"
  done
  cat <<EOF
        keepalive 16;
        # Below the dashboards' idle-connection timeout (30 s), so nginx never
        # reuses a connection the dashboard is closing.
        keepalive_timeout 20s;
    }

    server {
        listen 127.0.0.1:$port;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        # A dashboard that is down refuses at once; one that hangs is given 1 s
        # to accept before the request moves on.
        proxy_connect_timeout 1s;
        proxy_read_timeout 60s;
        # Every POST the dashboard takes is safe to send twice (a query only
        # reads, a login only issues a cookie, a logout only clears it, a reload
        # asks the workers to reload), so a request a dashboard dropped half-way
        # goes to the next one too: a user never sees a replica die.
        proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        proxy_next_upstream_timeout 20s;

        location / {
            proxy_pass http://quiver_dashboards;
        }
    }
}
EOF
} >"$conf"
"$nginx_bin" -t -p "$run_dir/nginx/" -e "$logs/nginx-error.log" -c "$conf" >"$logs/nginx-configtest.log" 2>&1 \
  || fail "nginx rejected $conf" "$logs/nginx-configtest.log"
"$nginx_bin" -p "$run_dir/nginx/" -e "$logs/nginx-error.log" -c "$conf" >>"$logs/nginx-error.log" 2>&1 &
started nginx 0 $!

{
  echo "QUIVER_URL=http://127.0.0.1:$port"
  echo "QUIVER_DASHBOARDS=$(IFS=,; echo "${dashboard_urls[*]}")"
  echo "QUIVER_WORKERS=$workers_csv"
  echo "QUIVER_WORKERS_HTTP=$(IFS=,; echo "${http_urls[*]}")"
  echo "QUIVER_TOKEN_FILE=$run_dir/secrets/dashboard-token"
  echo "QUIVER_LOGS=$logs"
} >"$run_dir/cluster.env"

# ---------------------------------------------------------------- ready? ---
say "waiting for $procs workers to load their shards (logs in $logs)"
for (( i=0; i<procs; i++ )); do
  wait_ready "worker $i" "${http_urls[$i]}/readyz" "${pids[$(( i + s3 ))]}" "$logs/worker-$i.log"
done
for (( j=0; j<dashboards; j++ )); do
  wait_ready "dashboard $j" "${dashboard_urls[$j]}/readyz" "${pids[$(( s3 + procs + j ))]}" "$logs/dashboard-$j.log"
done
nginx_pid=${pids[-1]}
wait_ready nginx "http://127.0.0.1:$port/readyz" "$nginx_pid" "$logs/nginx-error.log"

total=0
for n in $(curl -s --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/datasets" \
             | grep -o '"rows": *[0-9]*' | grep -o '[0-9]*$' || true); do
  total=$(( total + n ))
done
plural() { [ "$1" = 1 ] && echo "$1 $2" || echo "$1 ${2}s"; }
printf 'quiver: ready at http://127.0.0.1:%s/login  token %s  (%s, %s behind nginx, %s rows; logs in %s; Ctrl-C stops)\n' \
  "$port" "$token" "$(plural "$procs" worker)$([ "$replicas" = 1 ] || echo ": $workers shards x $replicas replicas")" \
  "$(plural "$dashboards" dashboard)" "$total" "$logs"

# ---------------------------------------------------------------- run ---
# Report processes that exit; nginx exiting ends the cluster (nothing is reachable).
while :; do
  sleep 1 &
  wait $! 2>/dev/null || true
  for (( k=0; k<${#pids[@]}; k++ )); do
    [ "${gone[$k]}" = 1 ] && continue
    if ! kill -0 "${pids[$k]}" 2>/dev/null; then
      gone[$k]=1
      rc=0; wait "${pids[$k]}" 2>/dev/null || rc=$?
      say "${roles[$k]} ${indexes[$k]} (pid ${pids[$k]}) exited with status $rc; see $logs"
      if [ "${roles[$k]}" = nginx ]; then
        fail "nginx exited; stopping the cluster" "$logs/nginx-error.log"
      fi
    fi
  done
done
