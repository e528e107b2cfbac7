/**
 * `npm run build`, second step: the programs users and the bench run (`tsvs`, `ctstat`, `npm run bench`) are
 * each one ES module bundled by esbuild from tsc's output in dist/, written to dist/bundle/ (the tests import
 * the modules of dist/ one by one, and run the CLIs through bin/, which start these bundles).
 *
 * Why: V8 reads every exported or imported module binding (`export const IPPROTO_TCP = 6`, an imported
 * function) through a cell, with a check that it is initialised, on every use in optimized code; a
 * module-local const is folded into the code as a literal. The packet path uses such constants (protocol
 * numbers, flag bits, table offsets, counter indices) dozens of times per packet across a dozen modules. In
 * one bundle they are all module-local: the optimized code of the packet path has no cell loads left
 * (`node --print-opt-code`: 1430 in the modular build, 32 in the bundle, none of them on the packet path).
 * Measured on the full LB path (`npm run bench -- lb`, 6 alternating fresh processes each): modular 2.88-3.35,
 * median 3.13 M packets/s; bundled 3.30-3.68, median 3.45.
 *
 * Packages stay external (resolved from node_modules at run time, as before): the optional native modules
 * (pcap, raw-socket) are loaded lazily with createRequire, which resolves from the bundle's directory the
 * same way. dist/bundle/ is as deep in the repository as dist/bench/, so the paths the bench builds from
 * import.meta.url (../../bench/lb.yaml, the sibling mem.js) resolve from either.
 */
import * as esbuild from 'esbuild';

await esbuild.build({
  entryPoints: ['dist/src/cli/tsvs.js', 'dist/src/cli/ctstat.js', 'dist/src/workers/worker.js', 'dist/src/live/live-worker.js', 'dist/bench/run.js', 'dist/bench/mem.js', 'dist/bench/flows-mem.js'],
  entryNames: '[name]',
  outdir: 'dist/bundle',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
