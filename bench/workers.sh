#!/bin/bash
# Issue 20: whole-process replay of the full LB path (FNAT, 4 servers per VIP, mh, output pcap) over a
# 3.5M-packet TCP capture, --workers 1 against --workers 2, alternating fresh processes; medians.
#   bash bench/workers.sh [runs]      (after npm run build)
set -e
cd "$(dirname "$0")/.."
runs=${1:-5}
cap=bench/data/tcp-3.5m-v4.pcap
[ -f $cap ] || GEN_V6=0 GEN_TCP_ONLY=1 node dist/bench/gen.js $cap 3500000 100000
# the output pcap on tmpfs when there is one (a disk's write-back makes the timings noisy), else /tmp
cfg=$(mktemp --suffix .yaml); out=$(mktemp -d -p "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp)")
trap 'rm -rf "$cfg" "$out"' EXIT
sed 's/scheduler: wrr/scheduler: mh/' bench/lb.yaml > "$cfg"
declare -a t1 t2
for i in $(seq "$runs"); do
  for n in 1 2; do
    s=$(date +%s.%N)
    bin/tsvs replay $cap --workers $n --config "$cfg" --out "$out/o$n.pcap" --json > "$out/s$n.json"
    e=$(echo "$(date +%s.%N) - $s" | bc)
    if [ $n = 1 ]; then t1+=("$e"); else t2+=("$e"); fi
    rm -f "$out/o$n.pcap"
  done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(med "${t1[@]}"); m2=$(med "${t2[@]}")
echo "workers 1: ${t1[*]} s (median $m1)"
echo "workers 2: ${t2[*]} s (median $m2)"
echo "speed-up: $(echo "scale=2; $m1 / $m2" | bc)x"
node -e '
const a = JSON.parse(require("fs").readFileSync(process.argv[1])), b = JSON.parse(require("fs").readFileSync(process.argv[2]));
const per = (s) => JSON.stringify(s.lb.services.map((x) => x.servers.map((y) => y.conns)));
console.log(`totals: conns ${a.conns.total} / ${b.conns.total}, emitted ${a.lb.emitted} / ${b.lb.emitted}, per-server conns ${per(a) === per(b) ? "equal" : "DIFFER"}`);
' "$out/s1.json" "$out/s2.json"
