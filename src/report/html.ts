/**
 * The replay report as one self-contained HTML file: uPlot (MIT; 51 kB, draws 100k-point series in a few
 * milliseconds) and its stylesheet inlined, the data as JSON in the page, and a small script that draws it.
 * Opening it makes no network request: no font, image or script comes from anywhere else.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { ReportData } from './report.js';

const require = createRequire(import.meta.url);

function asset(p: string): string {
  return fs.readFileSync(require.resolve(p), 'utf8');
}

/** JSON safe inside a <script> element (no "</script>", no "<!--") */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderReport(d: ReportData): string {
  const uplot = asset('uplot/dist/uPlot.iife.min.js').replace(/<\/script/gi, '<\\/script');
  const css = asset('uplot/dist/uPlot.min.css');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tsvs replay report: ${escapeHtml(d.file)}</title>
<style>${css}
${STYLE}</style></head>
<body>
<header><h1>tsvs replay report</h1><div id="head"></div></header>
<nav><a href="#charts">over time</a> · <a href="#services">services</a> · <a href="#flows">top flows</a> · <a href="#conns">top connections</a> · <a href="#summary">summary</a> · <a href="#config">command and configuration</a></nav>
<main>
<section id="charts"><h2>Over time</h2><p class="note" id="sampling"></p></section>
<section id="services"><h2>Services: each server's share against its weight</h2></section>
<section id="flows"><h2>Top flows (source → destination), open at the end</h2></section>
<section id="conns"><h2>Top connections</h2></section>
<section id="summary"><h2>Summary</h2><pre id="summary-text"></pre></section>
<section id="config"><h2>Command and configuration</h2><pre id="command-text"></pre><pre id="config-text"></pre></section>
</main>
<script>${uplot}</script>
<script id="data" type="application/json">${scriptJson(d)}</script>
<script>${VIEWER}</script>
</body></html>
`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1b1f24; background: #fafbfc; }
header, nav, main { padding: 0 24px; }
header h1 { font-size: 20px; margin: 16px 0 4px; }
#head { color: #57606a; }
nav { position: sticky; top: 0; background: #fafbfc; padding-top: 6px; padding-bottom: 6px; border-bottom: 1px solid #d0d7de; z-index: 10; }
h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.note { color: #57606a; margin: 2px 0 10px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
.chart { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 6px; min-width: 0; }
.chart .none { color: #57606a; padding: 8px; }
table { border-collapse: collapse; background: #fff; margin: 4px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; }
td.l, th.l { text-align: left; }
.bar { display: inline-block; height: 9px; background: #2f81f7; vertical-align: middle; }
.bar.w { background: #bf8700; }
pre { background: #fff; border: 1px solid #d0d7de; padding: 8px; overflow-x: auto; font-size: 12.5px; }
`;

/* The page's own script (plain ES2017, runs in the browser): charts from data.samples, tables from the rest. */
const VIEWER = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('data').textContent);
  var S = D.samples;
  var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#ad494a'];
  var charts = [];
  var stepped = uPlot.paths.stepped({ align: -1 });
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(v) {
    if (v === null || v === undefined) return '';
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    return String(Math.round(v * 100) / 100);
  }
  function bytes(v) {
    var u = ['B', 'kB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
  }
  function pct(v) { return (v * 100).toFixed(1) + '%'; }
  function group(name) { return S.series.filter(function (s) { return s.group === name; }); }
  function nonzero(list) { return list.filter(function (s) { return s.total > 0; }); }

  var grid = el('div', { class: 'charts' });
  document.getElementById('charts').appendChild(grid);
  function chart(title, unit, list, note) {
    var box = el('div', { class: 'chart' });
    grid.appendChild(box);
    if (!list.length) {
      box.appendChild(el('div', { class: 'none' }, title + ': ' + (note || 'none in this capture')));
      return;
    }
    var colors = list.map(function (s, i) { return PALETTE[i % PALETTE.length]; });
    box.setAttribute('data-colors', colors.join(' '));
    var opts = {
      title: title,
      width: Math.max(320, box.clientWidth - 12),
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'); },
      scales: { x: { time: true } },
      series: [{ label: 'time (UTC)' }].concat(list.map(function (s, i) {
        // a rate holds over the interval that ends at its point: drawn as steps up to it
        return { label: s.name, stroke: colors[i], width: 1.5, paths: s.kind === 'count' ? stepped : undefined, points: { show: false }, value: function (u, v) { return num(v); } };
      })),
      axes: [{}, { size: 64, label: unit, values: function (u, vals) { return vals.map(num); } }],
    };
    var u = new uPlot(opts, [S.t].concat(list.map(function (s) { return s.values; })), box);
    charts.push({ title: title, series: list.length, points: S.t.length, box: box, u: u });
  }

  var head = document.getElementById('head');
  var span = S.t.length > 1 ? (S.t[S.t.length - 1] - S.t[0]) : 0;
  head.textContent = D.file + ' · ' + (D.first_ts || '?') + ' to ' + (D.last_ts || '?') + ' (' + span.toFixed(3) + ' s)';
  document.getElementById('sampling').textContent = S.t.length + ' points, one every ' + S.interval + ' s of capture time where packets were; rates are per second between points, counts of open connections are their value at each point.';

  chart('Connections open, by protocol', 'connections', nonzero(group('open_proto')));
  chart('Connections open, by state', 'connections', nonzero(group('open_state')));
  chart('New connections per second', 'per second', nonzero(group('new')));
  chart('Packets per second', 'packets/s', group('traffic'));
  chart('Bytes per second (on the wire)', 'bytes/s', group('bytes'));
  chart('Drops and packets not emitted, per second, by reason', 'packets/s', nonzero(group('drops')));
  chart('ICMP errors per second', 'per second', nonzero(group('icmp')));
  if (group('synproxy').length) chart('Synproxy counters per second', 'per second', nonzero(group('synproxy')));
  var svcs = {};
  S.series.forEach(function (s) { var m = /^svc (.*): (conns|pkts|active)$/.exec(s.group); if (m) svcs[m[1]] = true; });
  Object.keys(svcs).forEach(function (name) {
    chart(name + ': new connections per second, by server', 'per second', nonzero(group('svc ' + name + ': conns')));
    chart(name + ': packets per second, by server', 'packets/s', nonzero(group('svc ' + name + ': pkts')));
    chart(name + ': active connections, by server', 'connections', nonzero(group('svc ' + name + ': active')));
    if (group('svc ' + name + ': home').length) {
      chart(name + ': home region (1 while home)', 'home', nonzero(group('svc ' + name + ': home')));
      chart(name + ': probed latency by region (last report; 0: no answer)', 'ms', nonzero(group('svc ' + name + ': latency')));
    }
  });
  if (group('templates').length) chart('Persistence templates', 'templates', group('templates'));
  if (group('flows').length) chart('Flows open', 'flows', group('flows'));

  function table(parent, cols, rows) {
    var t = el('table');
    var tr = el('tr');
    cols.forEach(function (c) { tr.appendChild(el('th', { class: c.l ? 'l' : '' }, c.h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el('tr');
      cols.forEach(function (c) {
        var td = el('td', { class: c.l ? 'l' : '' });
        var v = c.f(r);
        if (v instanceof Node) td.appendChild(v); else td.textContent = v;
        row.appendChild(td);
      });
      t.appendChild(row);
    });
    parent.appendChild(t);
  }
  function bar(share, cls) {
    var s = el('span');
    s.appendChild(el('span', { class: 'bar' + (cls ? ' ' + cls : ''), style: 'width:' + Math.round(share * 120) + 'px' }));
    s.appendChild(document.createTextNode(' ' + pct(share)));
    return s;
  }

  var sv = document.getElementById('services');
  if (!D.services.length) sv.appendChild(el('p', { class: 'note' }, 'No services (replayed without --config).'));
  D.services.forEach(function (s) {
    sv.appendChild(el('h3', {}, s.service + ' (' + s.scheduler + ', ' + s.forward + '): ' + s.conns.toLocaleString('en') + ' connections'));
    if (s.region) {
      sv.appendChild(el('p', { class: 'note' }, 'Home region at the end: ' + (s.region.home || 'none') + ' (rule: ' + s.region.rule + '). Changes of home:'));
      table(sv, [
        { h: 'time', l: 1, f: function (r) { return r.ts; } },
        { h: 'from', l: 1, f: function (r) { return r.from || '-'; } },
        { h: 'to', l: 1, f: function (r) { return r.to; } },
        { h: 'why', l: 1, f: function (r) { return r.why; } },
      ], s.region.changes);
    }
    table(sv, [
      { h: 'server', l: 1, f: function (r) { return r.server; } },
      { h: 'weight', f: function (r) { return r.weight; } },
      { h: 'share of the weights', l: 1, f: function (r) { return bar(r.weight_share, 'w'); } },
      { h: 'share of the connections', l: 1, f: function (r) { return bar(r.conn_share); } },
      { h: 'connections', f: function (r) { return r.conns.toLocaleString('en'); } },
      { h: 'packets', f: function (r) { return r.pkts.toLocaleString('en'); } },
      { h: 'bytes', f: function (r) { return bytes(r.bytes); } },
    ], s.servers);
  });

  var fl = document.getElementById('flows');
  if (!D.flows) fl.appendChild(el('p', { class: 'note' }, 'Flow accounting was off: replay with --flows FILE (or flows.enabled in the configuration) to see them.'));
  else {
    var fcols = [
      { h: 'source', l: 1, f: function (r) { return r.src; } },
      { h: 'destination', l: 1, f: function (r) { return r.dst; } },
      { h: 'bytes', f: function (r) { return bytes(r.bytes); } },
      { h: 'packets', f: function (r) { return r.pkts.toLocaleString('en'); } },
      { h: 'forwarded packets', f: function (r) { return r.fwd_pkts.toLocaleString('en'); } },
      { h: 'dropped packets', f: function (r) { var n = 0; for (var k in r.drops) n += r.drops[k]; return n.toLocaleString('en'); } },
      { h: 'first', l: 1, f: function (r) { return r.created; } },
      { h: 'last', l: 1, f: function (r) { return r.last; } },
    ];
    fl.appendChild(el('h3', {}, 'By bytes'));
    table(fl, fcols, D.flows.bytes);
    fl.appendChild(el('h3', {}, 'By packets'));
    table(fl, fcols, D.flows.pkts);
  }

  var cn = document.getElementById('conns');
  var ccols = [
    { h: 'proto', l: 1, f: function (r) { return r.proto; } },
    { h: 'original', l: 1, f: function (r) { return r.orig.src + ':' + (r.orig.sport === undefined ? '' : r.orig.sport) + ' → ' + r.orig.dst + ':' + (r.orig.dport === undefined ? '' : r.orig.dport); } },
    { h: 'server', l: 1, f: function (r) { return r.server || ''; } },
    { h: 'duration (s)', f: function (r) { return r.duration.toFixed(3); } },
    { h: 'bytes', f: function (r) { return bytes(r.bytes); } },
    { h: 'packets', f: function (r) { return (r.orig_pkts + r.reply_pkts).toLocaleString('en'); } },
    { h: 'state', l: 1, f: function (r) { return r.state; } },
    { h: 'history', l: 1, f: function (r) { return r.history; } },
    { h: 'end', l: 1, f: function (r) { return r.end; } },
  ];
  cn.appendChild(el('h3', {}, 'By duration'));
  table(cn, ccols, D.conns.duration);
  cn.appendChild(el('h3', {}, 'By bytes'));
  table(cn, ccols, D.conns.bytes);

  document.getElementById('summary-text').textContent = D.summary;
  document.getElementById('command-text').textContent = D.command;
  document.getElementById('config-text').textContent = D.config === null ? '(no configuration)' : D.config;

  window.addEventListener('resize', function () {
    charts.forEach(function (c) { c.u.setSize({ width: Math.max(320, c.box.clientWidth - 12), height: 240 }); });
  });
  window.__tsvsReport = { charts: charts.map(function (c) { return { title: c.title, series: c.series, points: c.points }; }) };
  window.__tsvsReady = true;
})();
`;
