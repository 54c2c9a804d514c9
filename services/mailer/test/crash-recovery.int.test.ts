import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import {
  mailRequest,
  spawnMailer,
  startMailerHarness,
  type MailerHarness,
  type MailerProcess,
} from './support/mailer-harness';

describe('mailer: killed with SIGKILL mid-work, then restarted', () => {
  let h: MailerHarness;
  let proc: MailerProcess | undefined;

  beforeAll(async () => {
    // SMTP_TIMEOUT_MS sets the send lease (10x): rows a dead mailer left in `sending` come back after 5 s.
    h = await startMailerHarness({
      env: { SMTP_TIMEOUT_MS: '500', SMTP_POOL_SIZE: '2', MAIL_RETRY_BASE_MS: '200', MAIL_RETRY_MAX_MS: '400' },
    });
  });
  afterAll(async () => {
    proc?.kill('SIGKILL');
    await proc?.exited;
    await h.stop();
  });

  it(
    'when killed with retries pending and sends in flight, then every request ends sent or failed and ' +
      'duplicates are counted, only from the sending window',
    async () => {
      const port = await freePort();
      proc = spawnMailer({ ...h.env, PORT: String(port), LOG_LEVEL: 'warn' });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, {
        timeoutMs: 30_000,
        message: `/readyz 200 (output: ${proc.output().slice(-500)})`,
      });

      await h.smtp.setFault({ mode: 'refuse' });
      const requests = Array.from({ length: 10 }, () => mailRequest());
      await h.produce(requests);
      await waitFor(
        () => requests.filter((r) => h.statusesOf(r.request_id).some((s) => s.status === 'deferred')).length >= 4,
        {
          timeoutMs: 20_000,
          message: 'retries pending',
        },
      );

      // Every reply delayed: mails are accepted (recorded by the server) before the client hears 250.
      await h.smtp.setFault({ mode: 'slow', delayMs: 100 });
      await waitFor(
        async () => {
          const { rows } = await h.db.pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM mailer_requests WHERE state = 'sending'`,
          );
          return h.smtp.messages.length >= 2 && Number(rows[0]?.n) > 0;
        },
        { timeoutMs: 20_000, message: 'some mails accepted while others are in flight' },
      );
      proc.kill('SIGKILL');
      await proc.exited;
      const { rows: left } = await h.db.pool.query<{ state: string; n: string }>(
        `SELECT state, count(*) AS n FROM mailer_requests GROUP BY state`,
      );
      expect(left.map((r) => r.state)).toEqual(expect.arrayContaining(['sending']));

      await h.smtp.setFault({ mode: 'healthy' });
      await h.startInProcess();

      await waitFor(
        () =>
          requests.every((r) => h.statusesOf(r.request_id).some((s) => s.status === 'sent' || s.status === 'failed')),
        {
          timeoutMs: 40_000,
          message: 'every request reaches a final status',
        },
      );
      const { rows } = await h.db.pool.query<{ request_id: string; state: string; possible_duplicate: boolean }>(
        `SELECT request_id, state, possible_duplicate FROM mailer_requests`,
      );
      expect(rows.every((r) => r.state === 'sent')).toBe(true);

      let duplicated = 0;
      for (const r of requests) {
        const copies = h.smtp.messages.filter((m) => m.to.includes(r.to)).length;
        expect(copies).toBeGreaterThanOrEqual(1);
        expect(copies).toBeLessThanOrEqual(2);
        if (copies === 2) {
          duplicated += 1;
          // A second copy only ever comes from a row that a dead mailer left in `sending`.
          expect(rows.find((row) => row.request_id === r.request_id)?.possible_duplicate).toBe(true);
        }
      }
      const flaggedAndSentHere = rows.filter((r) => r.possible_duplicate).length;
      expect(await h.metric('mail_duplicate_sends_total')).toBe(flaggedAndSentHere);
      expect(flaggedAndSentHere).toBeGreaterThanOrEqual(duplicated);
    },
  );
});

describe('mailer: start-up with a bad configuration', () => {
  it(
    'when SMTP_PORT and MAIL_TRANSPORT are invalid, then it exits 1 at once with one stderr line naming both, ' +
      'never the password',
    async () => {
      const proc = spawnMailer({
        SMTP_PORT: '99999',
        MAIL_TRANSPORT: 'pigeon',
        SMTP_USER: 'mailer',
        SMTP_PASSWORD: 'pa55-word-never-printed',
      });
      const code = await Promise.race([
        proc.exited,
        new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 20_000)),
      ]);
      if (code === 'still running') proc.kill('SIGKILL');

      expect(code).toBe(1);
      const lines = proc.output().trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('SMTP_PORT');
      expect(lines[0]).toContain('MAIL_TRANSPORT');
      expect(proc.output()).not.toContain('pa55-word-never-printed');
    },
  );
});
