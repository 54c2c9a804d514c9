import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

/** Runs main.ts with exactly `env` (plus PATH) and reports its exit code, stderr and how long it took (not asserted). */
function runMain(env: Record<string, string>): Promise<{ code: number | null; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(TSX, ['services/accounts/src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A guard, not an assertion: a process that would start serving is killed rather than left behind.
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stderr, ms: Date.now() - started });
    });
  });
}

describe('accounts start-up with a bad environment', () => {
  test(
    'when PORT is not a number and JWT_SECRET is missing in production, exits 1 with one stderr line naming ' + 'both',
    async () => {
      const secret = 'x'.repeat(40);

      const result = await runMain({ PORT: 'abc', NODE_ENV: 'production' });

      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/PORT/);
      expect(lines[0]).toMatch(/JWT_SECRET/);
      expect(result.stderr).not.toContain(secret);
      // How fast it exits is a benchmark's question (no timing assertions in tests): `ms` is reported only.
    },
  );

  test(
    'when NODE_ENV=production and JWT_SECRET is shorter than 32 bytes, refuses to start without echoing the ' +
      'secret',
    async () => {
      const result = await runMain({ NODE_ENV: 'production', JWT_SECRET: 'short-secret-value' });

      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/JWT_SECRET: must be at least 32 bytes/);
      expect(result.stderr).not.toContain('short-secret-value');
    },
  );
});
