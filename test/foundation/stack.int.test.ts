import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import { freePorts } from '../support/ports';
import { waitFor } from '../support/wait-for';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * `npm start` as a newcomer runs it: everything up, every /readyz 200, the mailer on a database of its
 * own; Ctrl-C in the terminal (SIGINT to the whole process group) stops every service gracefully —
 * each drains once, anonymous resends already answered are written — and Kafka stops after them.
 */
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

  it(
    'when started, then every part is up; when Ctrl-C is pressed with resends in flight, then each service ' +
      'drains once and they are written',
    async () => {
      // KAFKA_PORT and its + 1 (the broker's controller) are chosen together with every other port.
      const chosen = await freePorts(8, 2);
      const at = (i: number): number => chosen[i] as number;
      const ports = { accounts: at(2), relay: at(3), mailer: at(4) };
      const opsPorts = { accounts: at(5), relay: ports.relay, mailer: ports.mailer };
      const env = {
        ...process.env,
        DATABASE_URL: db.url,
        KAFKA_BROKERS: '',
        SMTP_HOST: '',
        KAFKA_PORT: String(at(0)),
        KAFKA_DATA_DIR: path.join(dataDir, 'kafka'),
        MAIL_CATCHER_SMTP_PORT: String(at(6)),
        MAIL_CATCHER_WEB_PORT: String(at(7)),
        ACCOUNTS_PORT: String(ports.accounts),
        ACCOUNTS_OPS_PORT: String(opsPorts.accounts),
        RELAY_PORT: String(ports.relay),
        MAILER_PORT: String(ports.mailer),
        MAILER_DATABASE_URL: '',
        FORCE_COLOR: '0',
        // Every anonymous resend below is a write (no cooldown, a cap far away).
        RESEND_COOLDOWN_S: '0',
        RESEND_MAX_PER_HOUR: '100',
      };
      // A process group of its own, like a terminal's foreground job: Ctrl-C signals the whole group.
      const stack = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], {
        cwd: path.resolve(__dirname, '..', '..'),
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const lines: string[] = [];
      readline.createInterface({ input: stack.stdout }).on('line', (l) => lines.push(l));
      readline.createInterface({ input: stack.stderr }).on('line', (l) => lines.push(l));
      const exited = new Promise<number | null>((resolve) => stack.once('exit', resolve));
      try {
        await waitFor(() => lines.some((l) => l.includes('the stack is up')), { timeoutMs: 120_000 }).catch(
          (err: Error) => {
            throw new Error(`the stack did not come up: ${err.message}\n${lines.join('\n')}`);
          },
        );

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

        // The mailer runs on its own database, created beside accounts' one.
        expect(out).toContain(`mailer ${db.name}_mailer`);
        const mailerTables = await db.pool.query(`SELECT to_regclass('public.mailer_requests') IS NOT NULL AS here`);
        expect(mailerTables.rows[0].here).toBe(false);

        // Anonymous resends are answered 202 before their lookup and write: Ctrl-C right after the
        // answers catches them in flight, and a graceful stop must still write every one.
        const api = `http://127.0.0.1:${ports.accounts}/api/v1/usr`;
        const email = `ctrl-c-${Date.now()}@example.test`;
        const post = (route: string, body: unknown) =>
          fetch(`${api}/${route}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
        expect((await post('register', { email, password: 'correct horse battery staple' })).status).toBe(201);
        const RESENDS = 30;
        const answers = await Promise.all(Array.from({ length: RESENDS }, () => post('email/resend', { email })));
        expect(answers.map((r) => r.status)).toEqual(Array(RESENDS).fill(202));
        process.kill(-(stack.pid as number), 'SIGINT');
        expect(await exited).toBe(0);

        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM email_confirmations c JOIN users u ON u.id = c.user_id WHERE u.email = $1`,
          [email],
        );
        expect(rows[0]?.n).toBe(1 + RESENDS);
        const log = lines.join('\n');
        expect(log).not.toContain('second stop request');
        for (const service of ['accounts', 'relay', 'mailer']) {
          const own = lines.filter((l) => l.startsWith(`[${service}]`));
          expect(own.filter((l) => l.includes('"msg":"stopping"'))).toHaveLength(1);
          expect(own.some((l) => l.includes('"msg":"stopped all"') && l.includes('"exit_code":0'))).toBe(true);
        }
        // Kafka stops after every service drained.
        const kafkaStop = lines.findIndex((l) => l.startsWith('[kafka]') && l.includes('stopping'));
        const lastDrain = Math.max(...lines.map((l, i) => (l.includes('"msg":"stopped all"') ? i : -1)));
        expect(kafkaStop).toBeGreaterThan(lastDrain);
        // Nothing it started survives: the broker (java) and every service port are gone.
        await waitFor(() => !alive(brokerPid), { timeoutMs: 30_000, message: 'the Kafka broker survived the stack' });
        for (const port of Object.values(ports)) {
          await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
        }
      } finally {
        if (stack.exitCode === null) process.kill(-(stack.pid as number), 'SIGKILL');
        const pidFile = path.join(dataDir, 'kafka', 'broker.pid');
        if (existsSync(pidFile)) {
          const pid = Number(readFileSync(pidFile, 'utf8'));
          if (alive(pid)) process.kill(pid, 'SIGKILL');
        }
      }
    },
    180_000,
  );

  it('when KAFKA_PORT is held by something that is not a Kafka broker, then it stops within seconds and says so', async () => {
    const [kafkaPort, accountsPort, opsPort, relayPort, mailerPort] = await freePorts(5);
    const sockets = new Set<Socket>();
    const squatter = createServer((socket) => {
      sockets.add(socket.on('error', () => undefined));
    });
    await new Promise<void>((resolve) => squatter.listen(kafkaPort, '127.0.0.1', resolve));
    // A process group of its own: should the check regress, the stack and its services are killed below.
    const stack = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        KAFKA_BROKERS: '',
        SMTP_HOST: 'smtp.invalid',
        KAFKA_PORT: String(kafkaPort),
        KAFKA_DATA_DIR: path.join(dataDir, 'kafka-squatted'),
        ACCOUNTS_PORT: String(accountsPort),
        ACCOUNTS_OPS_PORT: String(opsPort),
        RELAY_PORT: String(relayPort),
        MAILER_PORT: String(mailerPort),
        MAILER_DATABASE_URL: '',
        FORCE_COLOR: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    stack.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    stack.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    // 'close': the process has exited and its output has been read to the end.
    const closed = new Promise<number | null>((resolve) => stack.once('close', resolve));
    try {
      // The probe gives up after 15 s (each request at most 2 s): well before the services would start.
      const stillRunning = new Promise<string>((resolve) => {
        setTimeout(() => resolve('still running after 60 s'), 60_000).unref();
      });
      expect(await Promise.race([closed, stillRunning])).toBe(1);
      expect(out).toContain(`127.0.0.1:${kafkaPort} does not answer as a Kafka broker`);
      expect(out).not.toContain('using the broker already listening');
      expect(out).not.toContain('[accounts]');
    } finally {
      if (stack.exitCode === null) {
        // SIGTERM: the stack stops the services it started (each in a process group of its own) first.
        process.kill(-(stack.pid as number), 'SIGTERM');
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 20_000).unref())]);
        if (stack.exitCode === null) process.kill(-(stack.pid as number), 'SIGKILL');
      }
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => squatter.close(resolve));
    }
  }, 120_000);
});
