import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

type Run = { code: number | null; stdout: string; stderr: string; killed: boolean };

/** Starts a service with `env` and collects its output; a process still running after 10 s hangs. */
function startService(name: string, env: Record<string, string | undefined>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `services/${name}/src/main.ts`], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed });
    });
  });
}

/** Each service validates its environment at start: exit 1, ONE line naming every bad variable. */
describe.each([
  {
    service: 'accounts',
    env: { PORT: 'abc', NODE_ENV: 'production', RESEND_COOLDOWN_S: '-1' },
    names: ['PORT', 'JWT_SECRET', 'RESEND_COOLDOWN_S'],
  },
  {
    service: 'relay',
    env: { PORT: '70000', KAFKA_BROKERS: 'not a broker', RELAY_BATCH_SIZE: '0' },
    names: ['PORT', 'KAFKA_BROKERS', 'RELAY_BATCH_SIZE'],
  },
  {
    service: 'mailer',
    env: { SMTP_PORT: '99999', MAIL_TRANSPORT: 'pigeon', SMTP_USER: 'u', DATABASE_URL: 'mysql://x' },
    names: ['SMTP_PORT', 'MAIL_TRANSPORT', 'DATABASE_URL'],
  },
  // Production: the code-sealing key is required by both services, and the console transport (codes in the log) is refused.
  {
    service: 'accounts',
    env: { NODE_ENV: 'production', JWT_SECRET: 'a-production-secret-that-is-long-enough-0123' },
    names: ['MAIL_PAYLOAD_KEY'],
  },
  {
    service: 'mailer',
    env: { NODE_ENV: 'production', MAIL_TRANSPORT: 'console' },
    names: ['MAIL_PAYLOAD_KEY', 'MAIL_TRANSPORT'],
  },
  // A malformed fallback SMTP provider: alone, and beside another bad variable on the same line.
  { service: 'mailer', env: { SMTP_FALLBACK_URLS: 'not-a-url' }, names: ['SMTP_FALLBACK_URLS'] },
  {
    service: 'mailer',
    env: { SMTP_FALLBACK_URLS: 'smtp://backup.example:2525,ftp://x', SMTP_PORT: 'x' },
    names: ['SMTP_FALLBACK_URLS', 'SMTP_PORT'],
  },
])('$service with a bad environment', ({ service, env, names }) => {
  it('exits 1 with one stderr line naming every offending variable, no stack trace', async () => {
    const run = await startService(service, env);
    expect(run.killed).toBe(false);
    expect(run.code).toBe(1);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    for (const name of names) expect(lines[0]).toContain(name);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stdout).toBe('');
  });
});

describe('secrets in configuration errors', () => {
  it('never echoes a rejected JWT_SECRET', async () => {
    const run = await startService('accounts', { JWT_SECRET: 'short-secret-value', PORT: 'x' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('JWT_SECRET');
    expect(run.stderr).not.toContain('short-secret-value');
  });

  it('never echoes a rejected MAIL_PAYLOAD_KEY', async () => {
    const run = await startService('mailer', { MAIL_PAYLOAD_KEY: 'too-short-payload-key-value' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('MAIL_PAYLOAD_KEY');
    expect(run.stderr).not.toContain('too-short-payload-key-value');
  });

  // Entries with credentials that are otherwise invalid, whether or not the URL parser got as far as the
  // password: neither the user name nor the password (so nor user:pass) may reach the output.
  it.each([
    { problem: 'a port that is not a number', urls: 'smtp://relayuser:s3cr3t-pass@host:notaport' },
    { problem: 'not smtp:// or smtps://', urls: 'ftp://relayuser:s3cr3t-pass@relay.example:25' },
    {
      problem: 'the reserved name, second entry',
      urls: 'smtp://backup.example:2525,smtps://relayuser:s3cr3t-pass@relay.example?name=primary',
    },
  ])('never echoes the credentials of a rejected SMTP_FALLBACK_URLS entry ($problem)', async ({ urls }) => {
    const run = await startService('mailer', { SMTP_FALLBACK_URLS: urls });
    expect(run.killed).toBe(false);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('SMTP_FALLBACK_URLS');
    for (const secret of ['relayuser', 's3cr3t-pass']) {
      expect(run.stderr).not.toContain(secret);
      expect(run.stdout).not.toContain(secret);
    }
  });

  it('never echoes SMTP_PASSWORD when SMTP_USER is missing', async () => {
    const run = await startService('mailer', { SMTP_PASSWORD: 'hunter2-smtp-password' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('SMTP_USER');
    expect(run.stderr).not.toContain('hunter2-smtp-password');
  });
});
