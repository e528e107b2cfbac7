// A TUN device through the native module that answers one ICMP echo request to 10.98.0.2 (read from the
// device in a batch, the reply written to it), then closes. Usage: node tun-echo.cjs MODULE
const m = require(process.argv[2]);
const fs = require('node:fs');
const { execSync } = require('node:child_process');
const t = m.tunOpen('tsvstest0');
execSync('ip addr add 10.98.0.1/24 dev tsvstest0 && ip link set tsvstest0 up');
const h = m.pollStart(
  t.fd,
  (pkts) => {
    for (const p of pkts) {
      if (p[0] >> 4 !== 4 || p[9] !== 1 || p[20] !== 8) continue;
      // swap the addresses, type 0 (echo reply), and the ICMP checksum adjusted for the type's change
      const r = Buffer.from(p);
      p.copy(r, 12, 16, 20);
      p.copy(r, 16, 12, 16);
      r[20] = 0;
      const c = r.readUInt16BE(22) + 0x0800;
      r.writeUInt16BE((c & 0xffff) + (c >> 16), 22);
      fs.writeSync(t.fd, r);
      console.log(`echo ${p.subarray(16, 20).join('.')}`);
      m.pollStop(h);
      fs.closeSync(t.fd);
      return;
    }
  },
  64,
);
console.log('ready');
