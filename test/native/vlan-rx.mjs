// The native module's receive ring on IFACE: an 802.1Q-tagged frame sent from the peer's namespace (by a
// packet socket) arrives with its tag where it was on the wire, though the kernel takes it off
// (skb_vlan_untag) and gives it beside the frame. Prints JSON of the frames seen from SRC_MAC: their bytes
// 12-17 in hex and their lengths. Usage: node vlan-rx.mjs MODULE IFACE NS_OF_SENDER PEER_IFACE
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
const [mod, iface, senderNs, peer] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const desc = new Int32Array(3 * 64);
const r = m.ringOpen(iface, null, 65536, 4, desc, 2048);
const ring = new Uint8Array(r.ring);
const got = [];
const hex = (b) => Buffer.from(b).toString('hex');
m.ringStart(r.handle, (n) => {
  for (let i = 0; i < n; i++) {
    const off = desc[3 * i];
    // (only the test's frames: source address 02:00:00:00:00:77)
    if (hex(ring.subarray(off + 6, off + 12)) === '020000000077') got.push({ at12: hex(ring.subarray(off + 12, off + 18)), caplen: desc[3 * i + 1], wirelen: desc[3 * i + 2] });
  }
});
// broadcast, from 02:00:00:00:00:77, tag 0x8100 VID 10 priority 5, then IPv4/UDP 192.0.2.1:9 -> 192.0.2.2:9 with 4 bytes
const send = `
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("${peer}", 0))
ip = bytes.fromhex("4500002000004000401100000c0000010c000002") 
udp = bytes.fromhex("000900090008000001020304")
s.send(bytes.fromhex("ffffffffffff020000000077" + "8100a00a" + "0800") + ip + udp)
`;
setTimeout(() => {
  execFileSync('ip', ['netns', 'exec', senderNs, 'python3', '-c', send]);
  setTimeout(() => {
    console.log(JSON.stringify(got));
    m.ringClose(r.handle);
  }, 300);
}, 100);
