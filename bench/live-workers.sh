#!/usr/bin/env bash
# Live workers (a benchmark, not a test; root): the e2e namespace topology, two iperf3 clients at once from
# two client addresses (10.77.1.2 and 10.77.1.3, which the dispatch rule gives to different workers) to two
# VIP ports of one NAT server, through `tsvs run` with live.workers 1 and 2 in turn (ROUNDS times, a fresh
# tsvs each time): TCP (one stream each) and 64-byte UDP (one stream each, -b 0). Each figure is the median
# of its rounds, the sum of both clients. Usage: bash bench/live-workers.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-5}
ROUNDS=${2:-3}
P=tvw$$
VIP=10.77.9.1
. bench/ns.sh
ip netns exec $P-c ip addr add 10.77.1.3/24 dev eth0
for port in 5201 5202; do
  ip netns exec $P-s1 iperf3 -s -p $port > /dev/null 2>&1 &
  pids+=($!)
done
for w in 1 2; do
  cat > "$tmp/lb$w.yaml" <<YAML
live: { interfaces: [eth0], socket: $tmp/tsvs.sock, metrics: false, health: { enabled: false }, workers: $w }
services:
  - { proto: tcp, vip: $VIP, port: 5201, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5201 }] }
  - { proto: tcp, vip: $VIP, port: 5202, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5202 }] }
  - { proto: udp, vip: $VIP, port: 5201, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5201 }] }
  - { proto: udp, vip: $VIP, port: 5202, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5202 }] }
YAML
done
sleep 0.5
two() { # two [IPERF3 OPTIONS]: the two clients at once; prints the sum (TCP Gbit/s received, or UDP packets/s delivered)
  local a b
  ip netns exec $P-c iperf3 -c $VIP -p 5201 -B 10.77.1.2 -t "$T" "$@" -J > "$tmp/a.json" &
  a=$!
  ip netns exec $P-c iperf3 -c $VIP -p 5202 -B 10.77.1.3 -t "$T" "$@" -J > "$tmp/b.json" &
  b=$!
  wait $a $b
  node -e 'const fs=require("fs");let t=0;for(const f of process.argv.slice(1)){const j=JSON.parse(fs.readFileSync(f,"utf8"));if(j.start.test_start.protocol==="UDP"){const u=j.end.sum;t+=(u.packets-u.lost_packets)/u.seconds}else t+=j.end.sum_received.bits_per_second/1e9}console.log(t>1000?Math.round(t):t.toFixed(3))' "$tmp/a.json" "$tmp/b.json"
}
for round in $(seq "$ROUNDS"); do
  for w in 1 2; do
    ip netns exec $P-l bin/tsvs run --config "$tmp/lb$w.yaml" 2> "$tmp/tsvs-$w.log" &
    lb=$!
    pids+=($lb)
    sleep 2
    add "tcp-$w" "$(two)"
    add "udp-$w" "$(two -u -l 64 -b 0)"
    kill $lb
    wait $lb 2>/dev/null || true
  done
done
medians
echo "live workers (bash bench/live-workers.sh $T $ROUNDS): two iperf3 clients at once (two addresses, one per worker), ${T} s, medians of $ROUNDS rounds"
printf '  TCP Gbit/s (sum)          workers 1 %8s  workers 2 %8s   ratio %s\n' "${R[tcp-1]}" "${R[tcp-2]}" "$(ratio ${R[tcp-2]} ${R[tcp-1]})"
printf '  UDP 64-byte pkt/s (sum)   workers 1 %8s  workers 2 %8s   ratio %s\n' "${R[udp-1]}" "${R[udp-2]}" "$(ratio ${R[udp-2]} ${R[udp-1]})"
grep -h "workers workers=" "$tmp"/tsvs-2.log | sed 's/^/  /'
