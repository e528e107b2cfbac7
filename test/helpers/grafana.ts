/**
 * contrib/grafana/tsvs.json against what tsvs exports: every query's metrics are in a scrape (a `# TYPE`
 * line), each label it selects on or groups by is one of those metrics' labels (or Prometheus's own
 * instance/job), and the dashboard is importable as it is (one datasource input, ids unique, panels in the
 * 24-column grid).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './corpus.js';

export const DASHBOARD = path.join(REPO, 'contrib', 'grafana', 'tsvs.json');

interface Target {
  expr: string;
  refId: string;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid?: string };
  targets?: Target[];
}
interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string; datasource?: { uid?: string } }> };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

/** every PromQL expression of the dashboard: panel targets and variable queries */
export function dashboardQueries(d: Dashboard): string[] {
  return [...d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...d.templating.list.map((v) => v.definition ?? '')].filter(Boolean);
}

/** problems with the dashboard's shape (empty: importable) */
export function dashboardShape(d: Dashboard): string[] {
  const bad: string[] = [];
  if (d.__inputs.length !== 1 || d.__inputs[0]!.pluginId !== 'prometheus') bad.push('one Prometheus datasource input');
  const ds = `\${${d.__inputs[0]?.name}}`;
  const ids = new Set<number>();
  for (const p of d.panels) {
    if (ids.has(p.id)) bad.push(`panel id ${p.id} twice`);
    ids.add(p.id);
    if (p.gridPos.x < 0 || p.gridPos.x + p.gridPos.w > 24 || p.gridPos.h < 1) bad.push(`${p.title}: outside the grid`);
    if (p.type === 'row') continue;
    if (p.datasource?.uid !== ds) bad.push(`${p.title}: datasource ${p.datasource?.uid}`);
    if (!p.targets?.length) bad.push(`${p.title}: no query`);
    for (const t of p.targets ?? []) if (t.datasource?.uid !== ds || !t.refId || !t.expr) bad.push(`${p.title}: target ${t.refId}`);
  }
  for (const v of d.templating.list) if (v.datasource?.uid !== ds) bad.push(`variable ${v.name}: datasource`);
  return bad;
}

/** metric name -> its label names, from a Prometheus text scrape */
export function scrapeLabels(scrape: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of scrape.split('\n')) {
    const t = /^# TYPE (\S+) /.exec(line);
    if (t) {
      if (!out.has(t[1]!)) out.set(t[1]!, new Set());
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (!m || line.startsWith('#')) continue;
    const set = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/(\w+)="/g)) set.add(l[1]!);
    out.set(m[1]!, set);
  }
  return out;
}

/**
 * problems of the dashboard's queries against a scrape (empty: every metric and label exists). A metric the
 * scrape declares without any series (a region metric without region_select) has no labels to check: its
 * queries' labels are checked against another scrape that has them (the e2e tests check two).
 */
export function dashboardAgainst(d: Dashboard, scrape: string): string[] {
  const have = scrapeLabels(scrape);
  const seriesOf = new Set(scrape.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][\w:]*/.exec(l)?.[0]));
  const bad: string[] = [];
  const own = new Set(['instance', 'job']);
  for (const q of dashboardQueries(d)) {
    const metrics = [...new Set(q.match(/\btsvs_[a-z_]+/g) ?? [])];
    if (!metrics.length) bad.push(`no tsvs metric in: ${q}`);
    const labels = new Set(own);
    for (const m of metrics) {
      if (!have.has(m)) bad.push(`${m}: not in the scrape (${q})`);
      for (const l of have.get(m) ?? []) labels.add(l);
    }
    if (metrics.some((m) => have.get(m)?.size === 0 && !seriesOf.has(m))) continue;
    // labels in selectors (metric{a="", b=~""}) and in by (...) / ignoring (...) / on (...)
    for (const sel of q.matchAll(/\btsvs_[a-z_]+\{([^}]*)\}/g)) for (const l of sel[1]!.matchAll(/(\w+)\s*[=!]~?/g)) if (!labels.has(l[1]!)) bad.push(`label ${l[1]}: not on ${metrics.join(', ')} (${q})`);
    for (const g of q.matchAll(/\b(?:by|ignoring|on|without)\s*\(([^)]*)\)/g)) for (const l of g[1]!.split(',').map((x) => x.trim()).filter(Boolean)) if (!labels.has(l)) bad.push(`label ${l}: not on ${metrics.join(', ')} (${q})`);
  }
  return bad;
}
