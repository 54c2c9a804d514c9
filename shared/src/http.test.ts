import express from 'express';
import request from 'supertest';
import { Registry } from 'prom-client';
import { createOpsApp, httpComponent, listen } from './http';
import { createLogger } from './logger';

describe('createOpsApp (relay, mailer, accounts ops port)', () => {
  const failing = {
    name: 'postgres',
    check: () => Promise.reject(new Error('connect ECONNREFUSED 10.1.2.3:5432 password=hunter2')),
  };
  const app = createOpsApp({
    logger: createLogger({ service: 'test', level: 'silent' }),
    registry: new Registry(),
    checks: [failing],
  });

  it('when a dependency fails, /readyz is 503 naming the dependency but not its error text', async () => {
    const res = await request(app).get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ status: 'not_ready', checks: [{ name: 'postgres', ok: false }] });
    expect(res.text).not.toMatch(/ECONNREFUSED|10\.1\.2\.3|hunter2/);
  });

  it('every answer (200, 503, 404) carries the security headers and no framework banner', async () => {
    for (const res of [
      await request(app).get('/metrics'),
      await request(app).get('/readyz'),
      await request(app).get('/nope'),
    ]) {
      expect(res.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'cache-control': 'no-store',
      });
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });
});

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

describe('httpComponent', () => {
  it('when started, then it serves the app it creates; when stopped, then nothing listens', async () => {
    let url = '';
    const component = httpComponent({
      name: 'ops',
      port: 0,
      host: '127.0.0.1',
      createApp: () =>
        createOpsApp({
          logger: createLogger({ service: 'test', level: 'silent' }),
          registry: new Registry(),
          checks: [],
        }),
      onListening: (server) => (url = `http://127.0.0.1:${server.port}`),
    });
    await component.start();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await component.stop();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
