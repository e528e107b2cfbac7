# Sourced by the live benchmarks (after they set P): the e2e namespace topology with prefix $P, the servers'
# gateway the LB (NAT); a scratch directory $tmp; at exit the PIDs in pids[] killed, the script's
# bench_cleanup run if it has one, the namespaces and $tmp removed. Figures of alternating rounds: `add KEY
# VALUE` one round's, `medians` each key's median in place, `ratio A B`.
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if declare -F bench_cleanup > /dev/null; then bench_cleanup; fi
  bash test/e2e/topology.sh down "$P"
  rm -rf "$tmp"
}
trap cleanup EXIT
bash test/e2e/topology.sh up "$P"
bash test/e2e/topology.sh gw "$P" nat
declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
medians() { for k in "${!R[@]}"; do R[$k]=$(printf '%s\n' ${R[$k]} | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'); done; }
ratio() { node -e "console.log(($1/$2).toFixed(3))"; }
