#!/bin/bash
# SYN flood through `tsvs run` with the synproxy (a benchmark of the overload policy, not a test; root).
# The e2e namespace topology; hping3 floods the VIP with spoofed SYNs from the client namespace while the
# same client makes one legitimate HTTP request (curl, 5 s limit) every second. Prints the share of requests
# that succeeded, how often passive health took a server down, the daemon's RSS over the run, and its
# counters. Needs hping3 (apt-get install hping3). Usage: bash bench/flood.sh [SECONDS] [-- extra live: keys]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-60}
P=tvf$$
VIP=10.77.9.1
. bench/ns.sh
for s in s1 s2; do
  ip netns exec $P-$s node test/e2e/httpd.mjs $s 8080 > /dev/null 2>&1 &
  pids+=($!)
done
cat > "$tmp/lb.yaml" <<YAML
live: { interfaces: [eth0], socket: $tmp/tsvs.sock, metrics: false, health: { interval: 1, timeout: 0.5, rise: 2, fall: 2 } }
services:
  - { proto: tcp, vip: $VIP, port: 80, scheduler: wrr, forward: nat, synproxy: true, servers: [{ addr: 10.77.2.11, port: 8080 }, { addr: 10.77.2.12, port: 8080 }] }
YAML
ip netns exec $P-l bin/tsvs run --config "$tmp/lb.yaml" 2> "$tmp/tsvs.log" &
lb=$!
pids+=($lb)
for _ in $(seq 50); do grep -q running "$tmp/tsvs.log" && break; sleep 0.2; done
# the node process under `ip netns exec` (RSS is its own)
node_pid=$(pgrep -P $lb || echo $lb)
rss() { awk '/VmRSS/ {print $2}' /proc/$node_pid/status 2>/dev/null || echo 0; }
ok=0; n=0; rss_min=999999999; rss_max=0; rss_first=0; rss_trace=""; next_trace=0
ip netns exec $P-c hping3 -S -p 80 --flood --rand-source $VIP > "$tmp/hping.log" 2>&1 &
hp=$!
pids+=($hp)
sleep 2
rss_first=$(rss)
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$T" ]; do
  t0=$(date +%s%N)
  if ip netns exec $P-c curl -s -m 5 -o /dev/null -w '%{http_code}' http://$VIP/id | grep -q 200; then ok=$((ok + 1)); fi
  n=$((n + 1))
  r=$(rss); [ "$r" -lt "$rss_min" ] && rss_min=$r; [ "$r" -gt "$rss_max" ] && rss_max=$r
  if [ $(( $(date +%s) - start )) -ge $next_trace ]; then rss_trace="$rss_trace $((r / 1024))"; next_trace=$((next_trace + 10)); fi
  el=$(( ($(date +%s%N) - t0) / 1000000 )); [ $el -lt 1000 ] && sleep "0.$(printf %03d $((1000 - el)))"
done
kill -INT $hp 2>/dev/null || true
wait $hp 2>/dev/null || true
status=$(ip netns exec $P-l node dist/src/cli/tsvs.js ctl --socket "$tmp/tsvs.sock" -L -n --stats 2>/dev/null || true)
counters=$(ip netns exec $P-l node -e 'const s=require("net").createConnection(process.argv[1]);let o="";s.on("data",d=>{o+=d;if(o.includes("\n")){console.log(o);s.destroy()}});s.write("{\"v\":1,\"cmd\":\"status\"}\n{\"v\":1,\"cmd\":\"counters\"}\n")' "$tmp/tsvs.sock")
downs=$(grep -c 'server down' "$tmp/tsvs.log" || true)
echo "flood (bash bench/flood.sh $T): hping3 --flood --rand-source at the VIP (synproxy, nat), one curl a second"
echo "  hping3: $(grep -E 'packets transmitted' "$tmp/hping.log" || echo '(no summary)')"
echo "  legitimate requests: $ok of $n succeeded ($(node -e "console.log((100*$ok/$n).toFixed(1))")%)"
echo "  passive/active health took a server down: $downs times"
echo "  tsvs RSS: ${rss_first} kB after 2 s of flood, ${rss_min}-${rss_max} kB during the run; every 10 s (MB):$rss_trace"
echo "  status: $counters" | head -c 3000; echo
