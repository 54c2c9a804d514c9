import { Writable } from 'node:stream';
import { createLogger } from './logger';

describe('createLogger', () => {
  it('writes one JSON line per event with the service name and redacts secrets wherever they appear', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().trim().split('\n'));
        cb();
      },
    });
    const logger = createLogger({ service: 'test', destination });
    logger.child({ request_id: 'r1' }).info(
      {
        password: 'pw-123',
        body: { password: 'pw-456', refresh_token: 'rt-789' },
        headers: { authorization: 'Bearer abc' },
        vars: { code: '123456' },
      },
      'hello',
    );
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry).toMatchObject({ service: 'test', request_id: 'r1', msg: 'hello', level: 'info' });
    const text = lines[0] ?? '';
    for (const secret of ['pw-123', 'pw-456', 'rt-789', 'Bearer abc', '123456']) expect(text).not.toContain(secret);
  });

  it('redacts a code nested three levels deep and a password five levels deep', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger({ service: 'test', destination });
    logger.info(
      {
        event: { envelope: { payload: { vars: { code: '918273', first_name: 'Ada' } } } },
        a: { b: { c: { d: { e: { password: 'deep-pw-5' } } } } },
      },
      'nested',
    );
    const text = lines.join('');
    expect(text).not.toContain('918273');
    expect(text).not.toContain('deep-pw-5');
    expect(text).toContain('"first_name":"Ada"');
  });
});
