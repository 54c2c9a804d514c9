import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

describe('relay start-up configuration', () => {
  test('when PORT and RELAY_BATCH_SIZE are invalid, the relay exits 1 with one stderr line naming both', () => {
    const result = spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), ['services/relay/src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, PORT: 'abc', RELAY_BATCH_SIZE: '0' },
      encoding: 'utf8',
      timeout: 15_000,
    });

    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^relay: configuration error: .*PORT/);
    expect(lines[0]).toMatch(/RELAY_BATCH_SIZE: must be >= 1/);
  });
});
