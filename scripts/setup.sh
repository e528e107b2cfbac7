#!/bin/sh
# Set-up for the test suite on a fresh Debian machine with Node 20 (run as root):
# system tools the tests use as oracles or peers (chromium: the replay report is opened in it), then the npm
# dependencies and the build.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends tshark libpcap-dev tcpdump conntrack iproute2 iputils-ping ethtool nftables curl hping3 iperf3 g++ make chromium nginx-light >/dev/null
fi
# the native live-mode modules (pcap, raw-socket) build against this Node's own headers when they are installed
[ -f /usr/include/node/node_api.h ] && export npm_config_nodedir=/usr
npm ci --no-audit --no-fund
npm run build
