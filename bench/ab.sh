#!/bin/bash
# A/B of one bench figure in alternating fresh processes (the VM's speed drifts: alternate, then take medians).
#   bash bench/ab.sh PART RUNS DIR_A DIR_B [...]     PART: lb | synproxy | established | new
# Each DIR is a built checkout (dist/bundle/run.js); prints every figure and the median per DIR.
set -euo pipefail
part=$1; runs=$2; shift 2
declare -A vals
for i in $(seq "$runs"); do
  for d in "$@"; do
    case $part in
      lb) v=$(cd "$d" && node --expose-gc dist/bundle/run.js lb | awk '/full path  /{print $3}') ;;
      synproxy) v=$(cd "$d" && node --expose-gc dist/bundle/run.js synproxy | awk '/SYN-ACKs generated/{print $5}') ;;
      established) v=$(cd "$d" && BENCH_ONLY=established node --expose-gc dist/bundle/run.js conntrack | awk '/established path/{print $8}') ;;
      new) v=$(cd "$d" && BENCH_ONLY=new node --expose-gc dist/bundle/run.js conntrack | awk '/new connections:/{print $8}') ;;
      *) echo "unknown part $part" >&2; exit 2 ;;
    esac
    vals[$d]="${vals[$d]:-} $v"
  done
done
for d in "$@"; do
  med=$(echo ${vals[$d]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  echo "$part $d:${vals[$d]}  median $med"
done
