/** The live workers' merge of answers (cluster.ts): what is summed, what stands, how counts per batch come again. */
import { strict as assert } from 'node:assert';
import { sumAnswers, workerCount } from '../../src/live/cluster.js';

describe('live workers: answers merged', function () {
  it('numbers add field by field, arrays by index; weights, health, regions and versions stay the first worker\'s', function () {
    const a = { version: 1, packets: 10, capture: [{ iface: 'eth0', received: 5, dropped: 1 }], services: [{ service: 'tcp 10.0.0.1:80', conns: 3, servers: [{ server: 's1', weight: 3, conns: 2, health: 'up' }], region: { home: 'eu', latency: { eu: 4 } } }] };
    const b = { version: 1, packets: 7, capture: [{ iface: 'eth0', received: 2, dropped: 0 }], services: [{ service: 'tcp 10.0.0.1:80', conns: 4, servers: [{ server: 's1', weight: 3, conns: 1, health: 'down' }], region: { home: 'us', latency: { eu: 9 } } }] };
    assert.deepEqual(sumAnswers(a, b), {
      version: 1,
      packets: 17,
      capture: [{ iface: 'eth0', received: 7, dropped: 1 }],
      services: [{ service: 'tcp 10.0.0.1:80', conns: 7, servers: [{ server: 's1', weight: 3, conns: 3, health: 'up' }], region: { home: 'eu', latency: { eu: 4 } } }],
    });
  });

  it('packets per batch from the summed packets and batches, not summed themselves; a longer array keeps its tail', function () {
    const io = (rxp: number, rxb: number, txp: number, txb: number) => ({ rx_packets: rxp, rx_batches: rxb, rx_per_batch: rxb ? rxp / rxb : 0, tx_packets: txp, tx_batches: txb, tx_per_batch: txb ? txp / txb : 0 });
    assert.deepEqual(sumAnswers(io(100, 10, 50, 50), io(300, 10, 0, 0)), { rx_packets: 400, rx_batches: 20, rx_per_batch: 20, tx_packets: 50, tx_batches: 50, tx_per_batch: 1 });
    assert.deepEqual(sumAnswers([1, 2], [10, 20, 30]), [11, 22, 30]);
  });

  it('live.workers: a number, auto (the cores), or TSVS_LIVE_WORKERS over either; a bad one refused', function () {
    const old = process.env.TSVS_LIVE_WORKERS;
    try {
      delete process.env.TSVS_LIVE_WORKERS;
      assert.equal(workerCount(3, 2), 3);
      assert.equal(workerCount('auto', 2), 2);
      process.env.TSVS_LIVE_WORKERS = '2';
      assert.equal(workerCount(1, 8), 2);
      process.env.TSVS_LIVE_WORKERS = 'auto';
      assert.equal(workerCount(1, 8), 8);
      process.env.TSVS_LIVE_WORKERS = 'two';
      assert.throws(() => workerCount(1, 8), /TSVS_LIVE_WORKERS: 1 to 64 or auto/);
    } finally {
      if (old === undefined) delete process.env.TSVS_LIVE_WORKERS;
      else process.env.TSVS_LIVE_WORKERS = old;
    }
  });
});
