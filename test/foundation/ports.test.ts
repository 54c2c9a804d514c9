import { createServer } from 'node:net';
import { freePorts } from '../support/ports';

describe('test/support/ports: ports chosen together', () => {
  it('when eight ports are asked for with a run of two, then they are distinct, the first two consecutive, and all free again', async () => {
    const ports = await freePorts(8, 2);
    expect(new Set(ports).size).toBe(8);
    expect(ports[1]).toBe((ports[0] as number) + 1);
    for (const port of ports)
      await new Promise<void>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
      });
  });
});
