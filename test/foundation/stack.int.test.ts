import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import { freePort } from '../support/ports';
import { waitFor } from '../support/wait-for';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `npm start` as a newcomer runs it: everything up, every /readyz 200, Ctrl-C leaves no process. */
describe('npm start (the whole stack)', () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(path.join(tmpdir(), 'rp-stack-'));
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts Kafka, the mail catcher and the three services, serves /readyz and /metrics, and SIGINT stops every process', async () => {
    const ports = { accounts: await freePort(), relay: await freePort(), mailer: await freePort() };
    const opsPorts = { accounts: await freePort(), relay: ports.relay, mailer: ports.mailer };
    const env = {
      ...process.env,
      DATABASE_URL: db.url,
      KAFKA_BROKERS: '',
      SMTP_HOST: '',
      KAFKA_PORT: String(await freePort()),
      KAFKA_DATA_DIR: path.join(dataDir, 'kafka'),
      MAIL_CATCHER_SMTP_PORT: String(await freePort()),
      MAIL_CATCHER_WEB_PORT: String(await freePort()),
      ACCOUNTS_PORT: String(ports.accounts),
      ACCOUNTS_OPS_PORT: String(opsPorts.accounts),
      RELAY_PORT: String(ports.relay),
      MAILER_PORT: String(ports.mailer),
      FORCE_COLOR: '0',
    };
    const stack = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], { cwd: path.resolve(__dirname, '..', '..'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    readline.createInterface({ input: stack.stdout }).on('line', (l) => lines.push(l));
    readline.createInterface({ input: stack.stderr }).on('line', (l) => lines.push(l));
    const exited = new Promise<number | null>((resolve) => stack.once('exit', resolve));
    try {
      await waitFor(() => lines.some((l) => l.includes('the stack is up')), { timeoutMs: 120_000, message: `stack did not come up:\n${lines.join('\n')}` });

      for (const port of Object.values(opsPorts)) {
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
        expect(ready.status).toBe(200);
        const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
        expect(metrics.headers.get('content-type')).toContain('text/plain');
        expect(await metrics.text()).toMatch(/^# HELP /m);
      }
      const out = lines.join('\n');
      expect(out).toContain(`http://127.0.0.1:${ports.accounts}/api/v1/usr/register`);
      expect(out).toContain(`http://127.0.0.1:${opsPorts.accounts}/metrics`);
      expect((await fetch(`http://127.0.0.1:${ports.accounts}/metrics`)).status).toBe(404);
      expect(out).toMatch(/dev inbox\s+http:\/\/127\.0\.0\.1:\d+/);
      const brokerPid = Number(readFileSync(path.join(dataDir, 'kafka', 'broker.pid'), 'utf8'));
      expect(alive(brokerPid)).toBe(true);

      stack.kill('SIGINT');
      expect(await exited).toBe(0);
      // Nothing it started survives: the broker (java) and every service port are gone.
      await waitFor(() => !alive(brokerPid), { timeoutMs: 30_000, message: 'the Kafka broker survived the stack' });
      for (const port of Object.values(ports)) {
        await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
      }
    } finally {
      if (stack.exitCode === null) stack.kill('SIGKILL');
      const pidFile = path.join(dataDir, 'kafka', 'broker.pid');
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8'));
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  }, 180_000);
});
