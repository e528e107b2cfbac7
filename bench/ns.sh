# Sourced by the live benchmarks (after they set P): the e2e namespace topology with prefix $P, the servers'
# gateway the LB (NAT); a scratch directory $tmp; at exit the PIDs in pids[] killed, the script's
# bench_cleanup run if it has one, the namespaces and $tmp removed.
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
