import express from 'express';
import { listen } from './http';

describe('listen', () => {
  it('rejects with EADDRINUSE when the port is taken, instead of resolving a dead server', async () => {
    const first = await listen(express(), 0, '127.0.0.1');
    try {
      await expect(listen(express(), first.port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
  });

  it('close() lets an in-flight request finish', async () => {
    const app = express();
    let arrived!: () => void;
    const inHandler = new Promise<void>((resolve) => (arrived = resolve));
    app.get('/slow', (_req, res) => {
      arrived();
      setTimeout(() => res.json({ ok: true }), 200);
    });
    const server = await listen(app, 0, '127.0.0.1');
    const pending = fetch(`${server.url}/slow`);
    await inHandler;
    await server.close();
    const res = await pending;
    expect(await res.json()).toEqual({ ok: true });
  });
});
