import net from 'node:net';
import { once } from 'node:events';
import { coalesceWrites } from './smtp-socket';

describe('coalesceWrites: the writes of one event-loop turn leave together', () => {
  let server: net.Server;
  let received: Buffer[];
  let port: number;

  beforeAll(async () => {
    server = net.createServer((peer) => peer.on('data', (chunk: Buffer) => received.push(chunk)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    received = [];
  });

  const connect = async (): Promise<net.Socket> => {
    const socket = coalesceWrites(net.connect({ host: '127.0.0.1', port, noDelay: true }));
    await once(socket, 'connect');
    return socket;
  };
  const turn = () => new Promise((resolve) => setImmediate(resolve));

  test('a message written in pieces is corked until the end of the turn, then sent as one', async () => {
    const socket = await connect();
    socket.write('From: a\r\n\r\n');
    socket.write('body');
    socket.write('\r\n.\r\n');
    expect(socket.writableCorked).toBe(1);
    await turn();
    expect(socket.writableCorked).toBe(0);
    const deadline = Date.now() + 2_000;
    while (Buffer.concat(received).length < 20 && Date.now() < deadline) await turn();
    expect(Buffer.concat(received).toString()).toBe('From: a\r\n\r\nbody\r\n.\r\n');
    expect(received).toHaveLength(1);
    socket.destroy();
  });

  test('a later turn starts a new batch: nothing stays corked', async () => {
    const socket = await connect();
    socket.write('MAIL FROM:<a@x>\r\n');
    await turn();
    socket.write('RCPT TO:<b@x>\r\n');
    await turn();
    expect(socket.writableCorked).toBe(0);
    const deadline = Date.now() + 2_000;
    while (Buffer.concat(received).length < 32 && Date.now() < deadline) await turn();
    expect(Buffer.concat(received).toString()).toBe('MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n');
    socket.destroy();
  });
});
