#!/bin/bash
# Network namespaces for the agents' end-to-end test (run as root):
#   client --- router --- lb             (the load balancer and its hub, as in topology.sh)
#                 |
#            "internet" 10.66.0.0/24
#                 |
#                nat  (nftables masquerade, random ports)
#                 |
#       private LAN 192.168.77.0/24: a1 .11, a2 .12, a3 .13  (servers the LB cannot reach)
#   agents-topology.sh up PFX      build it
#   agents-topology.sh down PFX    delete every namespace named PFX-*
# Addresses: client 10.77.1.2 (router .1); lb 10.77.2.1 (router 10.77.2.254); VIP 10.77.9.1 routed to the LB;
# the NAT's outside address 10.66.0.2 (router 10.66.0.1). The router has no route to 192.168.77.0/24.
set -e
cmd=$1
P=$2
ns() { ip netns exec "$P-$1" "${@:2}"; }
nooffload() { ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; }
link() { # link NS1 IF1 ADDR1 NS2 IF2 ADDR2
  ip link add "$P-t" type veth peer name "$P-u"
  ip link set "$P-t" netns "$P-$1" name "$2"
  ip link set "$P-u" netns "$P-$4" name "$5"
  ns "$1" ip link set "$2" up
  ns "$4" ip link set "$5" up
  nooffload "$1" "$2"
  nooffload "$4" "$5"
  [ -z "$3" ] || ns "$1" ip addr add "$3" dev "$2"
  [ -z "$6" ] || ns "$4" ip addr add "$6" dev "$5"
}
case "$cmd" in
up)
  for n in c r l n a1 a2 a3; do ip netns add "$P-$n"; ns $n ip link set lo up; done
  link c eth0 10.77.1.2/24 r eth0 10.77.1.1/24
  link l eth0 10.77.2.1/24 r eth1 10.77.2.254/24
  link n eth0 10.66.0.2/24 r eth2 10.66.0.1/24
  ns r sysctl -qw net.ipv4.ip_forward=1
  ns r ip route add 10.77.9.1/32 via 10.77.2.1
  ns c ip route add default via 10.77.1.1
  ns l ip route add default via 10.77.2.254
  ns l sysctl -qw net.ipv4.ip_forward=0
  ns n ip route add default via 10.66.0.1
  ns n sysctl -qw net.ipv4.ip_forward=1
  ns n ip link add br0 type bridge
  ns n ip addr add 192.168.77.1/24 dev br0
  ns n ip link set br0 up
  k=0
  for a in a1 a2 a3; do
    k=$((k + 1))
    link "$a" eth0 "192.168.77.1$k/24" n "p$k" ""
    ns n ip link set "p$k" master br0
    ns "$a" ip route add default via 192.168.77.1
  done
  ns n nft add table ip tsvsnat
  ns n nft add chain ip tsvsnat post '{ type nat hook postrouting priority 100; }'
  ns n nft add rule ip tsvsnat post ip saddr 192.168.77.0/24 oifname eth0 masquerade random
  ;;
down)
  for n in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$n"; done
  ;;
*)
  echo "usage: $0 up|down PREFIX" >&2
  exit 2
  ;;
esac
