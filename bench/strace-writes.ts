import { readFileSync } from 'node:fs';

/**
 * `npx tsx bench/strace-writes.ts <strace output> [--postgres-port 5432] [--smtp-port N]`: what a
 * service writes to its peers, counted per kind — the round trips the profile's socket-write cost
 * scales with. Record with `strace -f -yy -e trace=write,writev -o <file> -p <pid>` while the cpu bench
 * runs its stack phase (docs/performance.md, fourth round). A PostgreSQL write is named by its first
 * message (`Q:` a simple query's first words, `B:` the named statement bound, `P:` a prepare); a write to
 * a Kafka broker by its API key; text (SMTP: commands, the message) by its first characters.
 */
const KAFKA_API: Record<number, string> = {
  0: 'Produce',
  1: 'Fetch',
  3: 'Metadata',
  8: 'OffsetCommit',
  9: 'OffsetFetch',
  10: 'FindCoordinator',
  11: 'JoinGroup',
  12: 'Heartbeat',
  14: 'SyncGroup',
  18: 'ApiVersions',
  22: 'InitProducerId',
};

/** strace's C-style escapes ("\0", "\377", "\x1f", "\n") back to bytes. */
function unescape(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c !== '\\') {
      out.push(c.charCodeAt(0) & 0xff);
      continue;
    }
    const rest = text.slice(i + 1);
    const octal = /^[0-7]{1,3}/.exec(rest);
    const hex = /^x([0-9a-fA-F]{2})/.exec(rest);
    if (octal) {
      out.push(parseInt(octal[0], 8));
      i += octal[0].length;
    } else if (hex) {
      out.push(parseInt(hex[1] as string, 16));
      i += 3;
    } else {
      const named: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12 };
      out.push(named[rest[0] as string] ?? (rest[0] ?? '\\').charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(out);
}

function kindOf(data: Buffer, port: number, opts: { pg: number; smtp: number | undefined }): string {
  if (port === opts.pg) {
    const type = String.fromCharCode(data[0] ?? 63);
    const body = data.subarray(5).toString('latin1');
    if (type === 'Q') return `postgres Q:${body.slice(0, 40).split('\0')[0]}`;
    if (type === 'B') return `postgres B:${body.split('\0')[1] ?? ''}`;
    if (type === 'P') return `postgres P:${body.split('\0')[0] ?? ''}`;
    return `postgres ${type}`;
  }
  // A Kafka request starts with its 4-byte size (first byte 0 below 16 MiB); SMTP is text.
  if (port === opts.smtp || data[0] !== 0) return `smtp ${data.subarray(0, 12).toString('latin1').split('\r')[0]}`;
  if (data.length >= 6) return `kafka ${KAFKA_API[data.readInt16BE(4)] ?? `api ${data.readInt16BE(4)}`}`;
  return `port ${port}`;
}

function main(): void {
  const [file, ...args] = process.argv.slice(2);
  if (!file) throw new Error('usage: strace-writes.ts <strace output> [--postgres-port P] [--smtp-port P]');
  const flag = (name: string): number | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  const opts = { pg: flag('--postgres-port') ?? 5432, smtp: flag('--smtp-port') };
  const counts = new Map<string, number>();
  const line = /\b(write|writev)\(\d+<TCP:\[[\d.]+:\d+->[\d.]+:(\d+)\]>, (?:\[\{iov_base=)?"((?:[^"\\]|\\.)*)"/;
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    const m = line.exec(text);
    if (!m) continue;
    const kind = kindOf(unescape(m[3] as string), Number(m[2]), opts);
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  for (const [kind, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(7)}  ${kind}`);
}

main();
