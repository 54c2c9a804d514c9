import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePorts, slicesStart } from '../support/ports';

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

  it('when ports are asked for, then none lies in the ephemeral range, where listen(0) and outgoing sockets take theirs', async () => {
    // A range tuned to leave no room outside it (1024-65535): ports come from listen(0), as before.
    if (slicesStart() === undefined) return;
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    const ports = [...(await freePorts(8, 2)), ...(await freePorts(8, 3))];
    for (const port of ports) expect(port < (low as number) || port > (high as number)).toBe(true);
  });

  it('when the ephemeral range leaves room below it, above it, or neither, then the slices go below, above, or nowhere', () => {
    expect(slicesStart([32_768, 60_999])).toBe(20_000); // Linux's default
    expect(slicesStart([49_152, 65_535])).toBe(20_000); // IANA's
    expect(slicesStart([1_024, 40_000])).toBe(40_001);
    expect(slicesStart([1_024, 65_535])).toBeUndefined();
    expect(slicesStart([15_000, 60_999])).toBeUndefined();
  });
});
