/**
 * `npm run build`, last step: tsvs's own native module (native/tsvs.c -> native/build/tsvs.node), compiled
 * with the system's C compiler against this Node's headers (N-API: no node-gyp, no download). Optional: where
 * there is no compiler or no headers it says why and the build goes on (replay never needs it; the agent
 * uses its veth data path instead). TSVS_NATIVE=0 skips it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const out = path.join(root, 'native', 'build', 'tsvs.node');
const include = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) => fs.existsSync(path.join(d, 'node_api.h')));
const cc = process.env.CC ?? 'cc';
if (process.env.TSVS_NATIVE === '0') console.log('native module: skipped (TSVS_NATIVE=0)');
else if (process.platform !== 'linux') console.log(`native module: not built (Linux only, this is ${process.platform})`);
else if (!include) console.log("native module: not built (no node_api.h: install Node's headers, e.g. Debian's nodejs-dev or libnode-dev)");
else {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-pthread', '-Wall', '-Wextra', '-Werror', `-I${include}`, path.join(root, 'native', 'tsvs.c'), '-o', out], { encoding: 'utf8' });
  if (r.error || r.status !== 0) console.log(`native module: not built (${cc}: ${r.error?.message ?? r.stderr.trim().split('\n').slice(0, 3).join(' / ')})`);
  else console.log(`native module: ${path.relative(root, out)}`);
}
