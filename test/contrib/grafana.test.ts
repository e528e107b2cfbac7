/** The Grafana dashboard's shape (importable as it is); its queries against a live scrape: test/e2e/live-lb.test.ts. */
import { strict as assert } from 'node:assert';
import { dashboardAgainst, dashboardQueries, dashboardShape, loadDashboard } from '../helpers/grafana.js';

describe('contrib/grafana/tsvs.json', () => {
  it('is importable: one Prometheus input, every panel and variable on it, unique ids, inside the grid', () => {
    const d = loadDashboard();
    assert.deepEqual(dashboardShape(d), []);
    assert.ok(dashboardQueries(d).length >= 20);
  });

  it('the check finds a metric or a label that does not exist (the live check relies on it)', () => {
    const d = loadDashboard();
    const scrape = '# TYPE tsvs_packets_total counter\ntsvs_packets_total 5\n';
    const bad = dashboardAgainst(d, scrape);
    assert.ok(bad.some((b) => b.startsWith('tsvs_server_up: not in the scrape')));
    const q = { ...d, panels: [{ ...d.panels[1]!, targets: [{ refId: 'A', expr: 'sum by (reason) (rate(tsvs_packets_total[1m]))' }] }], templating: { list: [] } };
    assert.deepEqual(dashboardAgainst(q, scrape), ['label reason: not on tsvs_packets_total (sum by (reason) (rate(tsvs_packets_total[1m])))']);
  });
});
