#!/usr/bin/env bash
# Measures an idle `fleetmesh node` (the deployable-fleet target: ≤ 15 MB RSS and ≤ 0.2 % of
# one core over 10 minutes). Starts a master and one node over UDP on 127.0.0.1 from a fresh
# link, waits until the node is present, then samples the node's resident memory every 10 s
# and its CPU time over the whole window, and prints the figures next to their targets.
#
#   scripts/idle_node.sh [SECONDS]        (default 600; a release build is made if missing)
#
# Set FLEETMESH to use another binary. Everything lives in a temporary directory, removed on
# exit with both processes.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
bin=${FLEETMESH:-target/release/fleetmesh}
if [[ -z ${FLEETMESH:-} ]]; then
  cargo build --release -q -p fleetmesh-cli
  bin=${CARGO_TARGET_DIR:-target}/release/fleetmesh
fi

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/master.toml" <<EOF
data_dir = "$dir/master"
listen = "127.0.0.1:$port"
EOF
"$bin" master --config "$dir/master.toml" --log-format json 2>"$dir/master.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '"master running"' "$dir/master.log" && break; sleep 0.1; done
link=$("$bin" token create --config "$dir/master.toml")

"$bin" node --data-dir "$dir/node" --listen 127.0.0.1:0 --lan-discovery false \
  --log-format json --join "$link" 2>"$dir/node.log" &
node=$!
pids+=("$node")
for _ in $(seq 300); do grep -q '"node present"' "$dir/master.log" && break; sleep 0.1; done
grep -q '"node present"' "$dir/master.log" || { echo "the node never became present" >&2; exit 1; }

tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$node/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$node/status"; }
start_cpu=$(cpu)
start_ns=$(date +%s%N)
max_rss=0
sum_rss=0
n=0
end=$((SECONDS + secs))
while ((SECONDS < end)); do
  r=$(rss_kb)
  ((r > max_rss)) && max_rss=$r
  sum_rss=$((sum_rss + r))
  n=$((n + 1))
  sleep $((secs < 10 ? secs : 10))
done
used=$(($(cpu) - start_cpu))
wall_ns=$(($(date +%s%N) - start_ns))
python3 - "$used" "$tick" "$wall_ns" "$max_rss" "$sum_rss" "$n" "$secs" <<'EOF'
import sys
used, tick, wall_ns, max_rss, sum_rss, n, secs = map(int, sys.argv[1:])
cpu_pct = 100.0 * (used / tick) / (wall_ns / 1e9)
print(f"idle fleetmesh node over {secs} s ({n} samples)")
print(f"  RSS: max {max_rss / 1024:.1f} MiB, mean {sum_rss / n / 1024:.1f} MiB   (target <= 15 MB)")
print(f"  CPU: {used / tick:.2f} s = {cpu_pct:.3f} % of one core   (target <= 0.2 %)")
EOF
grep -q '"node parted"' "$dir/master.log" && echo "  note: the node parted during the window" >&2
exit 0
