#!/bin/bash
# Network namespaces for the live end-to-end tests and the live benchmark (run as root).
#   topology.sh up PFX     build:  client --- router --- bridge (in the router) --- lb, s1, s2, s3
#   topology.sh gw PFX nat|direct   servers' default route: via the LB (nat) or via the router (dr/tunnel/fnat)
#   topology.sh down PFX   delete every namespace named PFX-*
# Addresses: client 10.77.1.2 (router 10.77.1.1); bridge 10.77.2.0/24: router .254, lb .1, s1 .11, s2 .12,
# s3 .13. VIP 10.77.9.1 is routed by the router to the LB and bound on the servers' lo (dr, tunnel);
# FNAT local addresses 10.77.3.0/24 are routed by the servers to the LB. Nothing is bound on the LB but .1:
# the kernel there neither answers nor forwards (ip_forward=0) what tsvs owns.
set -e
cmd=$1
P=$2
ns() { ip netns exec "$P-$1" "${@:2}"; }
nooffload() { ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; }
case "$cmd" in
up)
  for n in c r l s1 s2 s3; do ip netns add "$P-$n"; ns $n ip link set lo up; done
  ns r ip link add br0 type bridge
  ns r ip addr add 10.77.2.254/24 dev br0
  ns r ip link set br0 up
  ns r sysctl -qw net.ipv4.ip_forward=1
  ip link add "$P-c0" type veth peer name "$P-rc"
  ip link set "$P-c0" netns "$P-c" name eth0
  ip link set "$P-rc" netns "$P-r" name eth0
  ns c ip addr add 10.77.1.2/24 dev eth0
  ns r ip addr add 10.77.1.1/24 dev eth0
  for n in c r; do ns $n ip link set eth0 up; nooffload $n eth0; done
  ns c ip route add default via 10.77.1.1
  i=0
  for n in l s1 s2 s3; do
    i=$((i + 1))
    ip link add "$P-x$i" type veth peer name "$P-b$i"
    ip link set "$P-x$i" netns "$P-$n" name eth0
    ip link set "$P-b$i" netns "$P-r" name "b$i"
    ns r ip link set "b$i" master br0 up
    nooffload r "b$i"
    ns $n ip link set eth0 up
    nooffload $n eth0
  done
  ns l ip addr add 10.77.2.1/24 dev eth0
  ns l ip route add default via 10.77.2.254
  ns l sysctl -qw net.ipv4.ip_forward=0
  ns r ip route add 10.77.9.1/32 via 10.77.2.1
  for k in 1 2 3; do
    ns s$k ip addr add 10.77.2.1$k/24 dev eth0
    ns s$k ip addr add 10.77.9.1/32 dev lo
    ns s$k sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
    ns s$k ip route add 10.77.3.0/24 via 10.77.2.1
    ns s$k ip route add default via 10.77.2.1
  done
  ;;
gw)
  via=10.77.2.1
  [ "$3" = direct ] && via=10.77.2.254
  for k in 1 2 3; do ns s$k ip route replace default via $via; done
  ;;
down)
  for n in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$n"; done
  ;;
*)
  echo "usage: $0 up|gw|down PREFIX [nat|direct]" >&2
  exit 2
  ;;
esac
