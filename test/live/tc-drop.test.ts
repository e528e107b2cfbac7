/**
 * live.kernel_drop's program (src/live/tc-drop.ts): the capture filter narrowed to what the kernel would only
 * have dropped, compiled by libpcap (tcpdump) and run by tsvs's BPF interpreter over crafted frames; and the
 * rewrite of a socket filter's verdicts into tc's direct-action ones.
 */
import { strict as assert } from 'node:assert';
import { Bpf } from '../../src/capture/bpf.js';
import { dropFilter, tcBytecode } from '../../src/live/tc-drop.js';
import { concat, bytes, eth, icmp, ip4bytes, ipv4, ipv6, udp } from '../helpers/packets.js';
import { haveTool } from '../helpers/corpus.js';

const VIP = '10.77.9.1';
const SERVER = '10.77.2.11';

describe('kernel drop: what tc ingress takes from the kernel', function () {
  before(function () {
    if (!haveTool('tcpdump')) this.skip();
  });

  const prog = Bpf.compile(dropFilter(`dst host ${VIP} or src host ${SERVER} or src host 2001:db8::11`), 1);
  const takes = (f: Uint8Array) => prog.matches(f, 0, f.length, f.length);

  it('takes unicast IP to a VIP and from a server; leaves ARP, IPv6 neighbour discovery and multicast to the kernel', function () {
    assert.equal(takes(eth(0x0800, ipv4({ src: '10.77.1.2', dst: VIP, proto: 17 }, udp({ sport: 5000, dport: 53 })))), true, 'UDP to the VIP');
    assert.equal(takes(eth(0x0800, ipv4({ src: SERVER, dst: '10.77.1.2', proto: 17 }, udp({ sport: 53, dport: 5000 })))), true, "a server's reply");
    assert.equal(takes(eth(0x0800, ipv4({ src: '10.77.1.2', dst: '10.77.1.3', proto: 17 }, udp({ sport: 1, dport: 2 })))), false, 'other traffic');
    // an ARP request from the server (its address is the sender's: libpcap's `src host` matches it)
    const arp = concat(bytes(0, 1, 8, 0, 6, 4, 0, 1), bytes(2, 0, 0, 0, 0, 0x11), ip4bytes(SERVER), bytes(0, 0, 0, 0, 0, 0), ip4bytes('10.77.2.1'));
    assert.equal(Bpf.compile(`src host ${SERVER}`, 1).matches(eth(0x0806, arp), 0, 42, 42), true, '(the capture filter alone does match it)');
    assert.equal(takes(eth(0x0806, arp)), false, "the server's ARP");
    assert.equal(takes(eth(0x0800, ipv4({ src: SERVER, dst: '224.0.0.18', proto: 112 }, new Uint8Array(20)))), false, 'IPv4 multicast from a server');
    const ns = ipv6({ src: '2001:db8::11', dst: 'ff02::1:ff00:1', nh: 58, hops: 255 }, icmp({ v6: true, type: 135, src: '2001:db8::11', dst: 'ff02::1:ff00:1' }, new Uint8Array(20)));
    assert.equal(takes(eth(0x86dd, ns)), false, "a server's neighbour solicitation");
    const na = ipv6({ src: '2001:db8::11', dst: '2001:db8::1', nh: 58, hops: 255 }, icmp({ v6: true, type: 136, src: '2001:db8::11', dst: '2001:db8::1' }, new Uint8Array(20)));
    assert.equal(takes(eth(0x86dd, na)), false, "a server's neighbour advertisement (unicast)");
    const reply = ipv6({ src: '2001:db8::11', dst: '2001:db8::99', nh: 17 }, udp({ v6: true, src: '2001:db8::11', dst: '2001:db8::99', sport: 53, dport: 5000 }));
    assert.equal(takes(eth(0x86dd, reply)), true, "an IPv6 server's reply");
  });

  it("a socket filter's verdicts as tc's: accept -> TC_ACT_SHOT (2), reject -> TC_ACT_UNSPEC (-1); a filter returning A is refused", function () {
    const p = Int32Array.from([0x28, 0, 0, 12, 0x15, 0, 1, 0x800, 0x06, 0, 0, 262144, 0x06, 0, 0, 0]);
    assert.equal(tcBytecode(p), '4,40 0 0 12,21 0 1 2048,6 0 0 2,6 0 0 4294967295');
    assert.equal(tcBytecode(Int32Array.from([0x16, 0, 0, 0])), null);
  });
});
