import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * `npx tsx bench/profile-summary.ts <file.cpuprofile>... [--top N] [--from-s S]`: where a `node --cpu-prof` profile
 * (e.g. from `BENCH_CPU_PROF=dir npm run bench cpu`) spends its time — self time grouped by package
 * (or project directory) and the top functions. A rough map for docs/performance.md, not a flame graph.
 */
type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[] };

function groupOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return url;
  const file = url.replace(/^file:\/\//, '');
  const rel = path.relative(path.resolve(__dirname, '..'), file);
  return rel.startsWith('..') ? file : path.dirname(rel);
}

function summarize(file: string, top: number, fromS: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    // --from-s skips start-up (module loading) and anything else before that second of the process.
    if (at >= fromS * 1e6) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = (byId.get(id) as Node).callFrame;
    const group = groupOf(url, functionName);
    groups.set(group, (groups.get(group) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url ? `${groupOf(url, '')}/${path.basename(url)}:${lineNumber + 1}` : ''}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  const idle = groups.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)} %`;
  process.stdout.write(
    `\n${file}\n  ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (percentages of busy)\n`,
  );
  const sorted = (m: Map<string, number>) =>
    [...m.entries()].filter(([k]) => k !== '(idle)' && !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  process.stdout.write('  by package/directory:\n');
  for (const [k, us] of sorted(groups).slice(0, top)) process.stdout.write(`    ${pct(us)}  ${k}\n`);
  process.stdout.write('  top functions (self):\n');
  for (const [k, us] of sorted(functions).slice(0, top)) process.stdout.write(`    ${pct(us)}  ${k}\n`);
}

const args = process.argv.slice(2);
const option = (name: string, fallback: number) =>
  args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback;
const flagged = new Set(
  ['--top', '--from-s'].flatMap((f) => (args.includes(f) ? [args.indexOf(f), args.indexOf(f) + 1] : [])),
);
for (const file of args.filter((_, i) => !flagged.has(i))) summarize(file, option('--top', 15), option('--from-s', 0));
