import { execFile } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const eslintBin = path.join(root, 'node_modules', '.bin', 'eslint');

type LintMessage = { ruleId: string | null; message: string };

/** Lints `code` as if it were the file at `filePath` (it need not exist) with the project's eslint.config.mjs. */
function lint(code: string, filePath: string): Promise<LintMessage[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      eslintBin,
      ['--format', 'json', '--stdin', '--stdin-filename', filePath],
      { cwd: root },
      (err, stdout) => {
        // eslint exits 1 when it reports errors; the JSON report is on stdout either way.
        if (err && err.code !== 1) return reject(err);
        const [result] = JSON.parse(stdout) as Array<{ messages: LintMessage[] }>;
        resolve(result?.messages ?? []);
      },
    );
    child.stdin?.end(code);
  });
}

const restricted = (messages: LintMessage[]) => messages.filter((m) => m.ruleId === 'no-restricted-imports');

describe('the lint rules that hold the architecture', () => {
  test('when data-access imports the domain, then lint fails', async () => {
    const code = "import type { OutboxRow } from '../domain/outbox-message';\nexport type Row = OutboxRow;\n";
    const messages = restricted(await lint(code, 'services/relay/src/data-access/fixture.ts'));
    expect(messages).toHaveLength(1);
    expect(messages[0]?.message).toContain('data-access must not import domain/');
  });

  test('when data-access imports an entry point, then lint fails', async () => {
    const code = "import type { Dispatcher } from '../entry-points/dispatcher';\nexport type D = Dispatcher;\n";
    expect(restricted(await lint(code, 'services/mailer/src/data-access/fixture.ts'))).toHaveLength(1);
  });

  test('when data-access imports another service, then the service boundary still fails it', async () => {
    const code =
      "import type { OutboxRow } from '../../../relay/src/data-access/outbox-row';\nexport type R = OutboxRow;\n";
    const messages = restricted(await lint(code, 'services/mailer/src/data-access/fixture.ts'));
    expect(messages.map((m) => m.message).join('\n')).toContain('services/mailer must not import services/relay');
  });

  test('when the domain imports data-access, then lint passes (the allowed direction)', async () => {
    const code = "import type { OutboxRow } from '../data-access/outbox-row';\nexport type Row = OutboxRow;\n";
    expect(restricted(await lint(code, 'services/relay/src/domain/fixture.ts'))).toEqual([]);
  });
});
