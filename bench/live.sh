#!/bin/bash
# Live throughput (a benchmark, not a test; root): the e2e namespace topology, iperf3 from the client to a
# VIP whose one NAT server runs iperf3 -s, through `tsvs run` and then through the kernel's own nftables
# DNAT in the same LB namespace, on both of tsvs's packet I/O paths (batched: the native module's ring and
# sendmmsg; pcap: libpcap and raw-socket), with 1 and 4 parallel streams. Prints TCP Gbit/s and 64-byte UDP
# packets/s received for each, and the ratios; the UDP rows also say how many datagrams the server's socket
# refused (UdpRcvbufErrors), and one more row runs 1 UDP stream with a 2 MiB server socket buffer (iperf3
# -w 2M) on every path. With ROUNDS > 1 the three paths take turns ROUNDS times (a fresh tsvs each time) and
# each figure is the median of its rounds (the ratios: of the medians). Needs iperf3 and nft (apt-get install
# iperf3 nftables). Usage: bash bench/live.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-5}
ROUNDS=${2:-1}
P=tvb$$
VIP=10.77.9.1
bench_cleanup() { ip netns exec $P-l nft delete table ip tsvsbench 2>/dev/null || true; }
. bench/ns.sh
ip netns exec $P-s1 iperf3 -s -p 5201 > /dev/null 2>&1 &
pids+=($!)
cat > "$tmp/lb.yaml" <<YAML
live: { interfaces: [eth0], socket: $tmp/tsvs.sock, metrics: false, health: { enabled: false } }
services:
  - { proto: tcp, vip: $VIP, port: 5201, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5201 }] }
  - { proto: udp, vip: $VIP, port: 5201, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 5201 }] }
YAML
sleep 0.5
rcvbuf() { ip netns exec $P-s1 nstat -az UdpRcvbufErrors | awk '/UdpRcvbufErrors/ {print $2}'; }
udp() { # udp PARALLEL [IPERF3 OPTIONS]: "pps refused_per_s"
  local a r b
  a=$(rcvbuf)
  r=$(ip netns exec $P-c iperf3 -c $VIP -p 5201 -P "$1" -u -l 64 -b 0 -t "$T" ${2:-} -J | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const u=j.end.sum;console.log(Math.round((u.packets-u.lost_packets)/u.seconds))})')
  b=$(rcvbuf)
  echo "$r $(( (b - a) / T ))"
}
measure() { # measure PARALLEL: "tcp_gbit udp_pps udp_refused_per_s"
  local tcp
  tcp=$(ip netns exec $P-c iperf3 -c $VIP -p 5201 -P "$1" -t "$T" -J | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log((j.end.sum_received.bits_per_second/1e9).toFixed(3))})')
  echo "$tcp $(udp "$1")"
}
run_path() { # run_path batched|pcap|nft: one round of every measurement on that path
  local io=$1 lb=0 par t u r uw rw
  if [ "$io" = nft ]; then
    ip netns exec $P-l sysctl -qw net.ipv4.ip_forward=1
    ip netns exec $P-l nft -f - <<NFT
table ip tsvsbench {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr $VIP tcp dport 5201 dnat to 10.77.2.11:5201
    ip daddr $VIP udp dport 5201 dnat to 10.77.2.11:5201
  }
}
NFT
  else
    TSVS_LIVE_IO=$io ip netns exec $P-l bin/tsvs run --config "$tmp/lb.yaml" 2> "$tmp/tsvs-$io.log" &
    lb=$!
    pids+=($lb)
    sleep 2
  fi
  for par in 1 4; do
    read -r t u r < <(measure $par)
    add "$io-tcp-$par" "$t"
    add "$io-udp-$par" "$u"
    add "$io-ref-$par" "$r"
  done
  read -r uw rw < <(udp 1 "-w 2M")
  add "$io-udpw-1" "$uw"
  add "$io-refw-1" "$rw"
  if [ "$io" = nft ]; then
    ip netns exec $P-l nft delete table ip tsvsbench
    ip netns exec $P-l sysctl -qw net.ipv4.ip_forward=0
  else
    kill $lb
    wait $lb 2>/dev/null || true
  fi
}
for round in $(seq "$ROUNDS"); do
  for io in batched pcap nft; do run_path $io; done
done
# each figure: the median of its rounds
medians
echo "live (bash bench/live.sh $T $ROUNDS): iperf3 through the LB namespace, ${T} s each, $( [ "$ROUNDS" = 1 ] && echo 'one round' || echo "medians of $ROUNDS rounds" ); tsvs batched (TPACKET_V2 ring, coalescing, sendmmsg on transmit threads), tsvs pcap (libpcap, raw-socket), the kernel's nftables DNAT"
for par in 1 4; do
  printf '  %d stream%s TCP Gbit/s        batched %8s  pcap %8s  nftables %8s   ratios batched %s pcap %s\n' $par "$([ $par = 1 ] && echo ' ' || echo s)" "${R[batched-tcp-$par]}" "${R[pcap-tcp-$par]}" "${R[nft-tcp-$par]}" "$(ratio ${R[batched-tcp-$par]} ${R[nft-tcp-$par]})" "$(ratio ${R[pcap-tcp-$par]} ${R[nft-tcp-$par]})"
  printf '  %d stream%s UDP 64-byte pkt/s  batched %8s  pcap %8s  nftables %8s   ratios batched %s pcap %s   (server socket refused/s: %s %s %s)\n' $par "$([ $par = 1 ] && echo ' ' || echo s)" "${R[batched-udp-$par]}" "${R[pcap-udp-$par]}" "${R[nft-udp-$par]}" "$(ratio ${R[batched-udp-$par]} ${R[nft-udp-$par]})" "$(ratio ${R[pcap-udp-$par]} ${R[nft-udp-$par]})" "${R[batched-ref-$par]}" "${R[pcap-ref-$par]}" "${R[nft-ref-$par]}"
done
printf '  1 stream  UDP, server -w 2M     batched %8s  pcap %8s  nftables %8s   ratios batched %s pcap %s   (server socket refused/s: %s %s %s)\n' "${R[batched-udpw-1]}" "${R[pcap-udpw-1]}" "${R[nft-udpw-1]}" "$(ratio ${R[batched-udpw-1]} ${R[nft-udpw-1]})" "$(ratio ${R[pcap-udpw-1]} ${R[nft-udpw-1]})" "${R[batched-refw-1]}" "${R[pcap-refw-1]}" "${R[nft-refw-1]}"
grep -h "packet i/o" "$tmp"/tsvs-*.log | sed 's/^/  /'
