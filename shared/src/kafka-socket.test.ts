import net from 'node:net';
import { noDelaySocketFactory } from './kafka';

describe('Kafka client sockets', () => {
  it('when kafkajs opens a plain connection, then the socket has TCP_NODELAY set and connects', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const spy = jest.spyOn(net.Socket.prototype, 'setNoDelay');
    try {
      const port = (server.address() as net.AddressInfo).port;
      let socket: net.Socket | undefined;
      await new Promise<void>((resolve) => {
        socket = noDelaySocketFactory({
          host: '127.0.0.1',
          port,
          ssl: undefined as unknown as object,
          onConnect: resolve,
        });
      });
      expect(spy.mock.instances).toContain(socket);
      expect(spy.mock.calls.some((args) => args[0] === true)).toBe(true);
      socket?.destroy();
    } finally {
      spy.mockRestore();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
