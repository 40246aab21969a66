#!/usr/bin/env bash
# Bounded fuzzing of the worker's untrusted-input paths (see fuzz/README.md):
# installs cargo-fuzz if missing, builds every target once, runs each for
# FUZZ_SECONDS, prints libFuzzer's figures per target, and fails when a target
# crashed, naming the input that did it.
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space-separated subset (default: ticket csv parquet)
#   FUZZ_RSS_MB    per-process memory limit in MiB (default 2048)
#
# Runs from a clean clone: the fuzz crate has its own lock file and target dir
# (fuzz/target); found inputs go to fuzz/target/corpus, crashes to fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"ticket csv parquet"}
rss_mb=${FUZZ_RSS_MB:-2048}
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }

# cargo-fuzz drives libFuzzer through -Z flags; the one stable toolchain
# accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# No sanitizer: the worker has no `unsafe`, so ASan would only re-check the
# dependencies' unsafe code, and measured on 2 cores it costs +47% build CPU
# (19m36s vs 13m19s user, cold) and runs 5-7x slower (ticket 5.6k vs 28k
# exec/s, parquet 330 vs 2200). Rust panics, overflow (debug assertions, -a),
# OOM and timeouts are what these targets look for.
echo "==> building fuzz targets ($(elapsed)s)"
# The dev profile of fuzz/Cargo.toml: the crates inputs run through at
# opt-level 1, the rest unoptimised, a build CI can afford on 2 cores.
cargo fuzz build --dev --sanitizer none --debug-assertions
bin_dir="$root/fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/debug"
echo "==> built ($(elapsed)s)"

max_len() {
  case "$1" in
    ticket) echo 4096 ;;
    csv) echo 16384 ;;
    parquet) echo 65536 ;;
    *) echo 4096 ;;
  esac
}

failed=()
summary=()
for t in $targets; do
  bin="$bin_dir/$t"
  [ -x "$bin" ] || { echo "no fuzz target binary $bin" >&2; exit 2; }
  work="$root/fuzz/target/corpus/$t"
  artifacts="$root/fuzz/artifacts/$t"
  logs="$root/fuzz/target/logs"
  mkdir -p "$work" "$artifacts" "$logs"
  seeds=("$root/fuzz/corpus/$t")
  [ -d "$root/worker/tests/fuzz-regressions/$t" ] && seeds+=("$root/worker/tests/fuzz-regressions/$t")
  dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=("-dict=$root/fuzz/dict/$t.dict")
  # Seeds longer than -max_len would be cut short: raise it to the longest.
  len=$(max_len "$t")
  longest=$(find "${seeds[@]}" -type f -printf '%s\n' 2>/dev/null | sort -n | tail -n1)
  [ -n "$longest" ] && [ "$longest" -gt "$len" ] && len=$longest
  log="$logs/$t.log"
  echo "==> fuzzing $t for ${seconds}s (max_len $len, rss limit ${rss_mb} MiB) ($(elapsed)s)"
  set +e
  # New inputs go to the first directory (ignored by git); the committed
  # seeds and regressions are read only.
  "$bin" "$work" "${seeds[@]}" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb="$rss_mb" -max_len="$len" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/Sb ... exec/s: E rss: R".
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
  line=$(printf '%-8s runs %-9s exec/s %-6s cov %-6s ft %-6s corpus %-12s peak rss %s MiB' \
    "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${peak:-?}")
  summary+=("$line")
  echo "    $line"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "!!! $t failed (libFuzzer exit $rc); the end of its log ($log):"
    tail -n 40 "$log"
    for a in "$artifacts"/*; do
      [ -f "$a" ] || continue
      echo "!!! input: $a"
      echo "    reproduce: $bin $a"
      echo "    turn it into a regression test: mkdir -p worker/tests/fuzz-regressions/$t && cp $a worker/tests/fuzz-regressions/$t/"
      echo "    then fix the cause; cargo test -p quiver-worker --test fuzz_regressions replays it."
    done
  fi
done

echo "==> fuzzing summary ($(elapsed)s, ${seconds}s per target)"
for l in "${summary[@]}"; do echo "    $l"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "no crashes"
