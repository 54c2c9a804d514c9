import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import argon2 from 'argon2';
import express from 'express';
import nodemailer from 'nodemailer';
import pg from 'pg';

/**
 * The synchronous design this project replaces, kept only as the benchmark's baseline: insert the
 * user, then send the confirmation mail INSIDE the request with the same SMTP timeout. When SMTP
 * stalls, every registration waits for the timeout and then fails although the user exists — the
 * seed's incident.
 */
export async function startSyncBaseline(opts: {
  databaseUrl: string;
  smtpHost: string;
  smtpPort: number;
  smtpTimeoutMs: number;
}): Promise<{ url: string; close: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 20 });
  const transport = nodemailer.createTransport({
    host: opts.smtpHost,
    port: opts.smtpPort,
    secure: false,
    ignoreTLS: true,
    pool: true,
    connectionTimeout: opts.smtpTimeoutMs,
    greetingTimeout: opts.smtpTimeoutMs,
    socketTimeout: opts.smtpTimeoutMs,
  });
  const app = express();
  app.use(express.json());
  app.post('/api/v1/usr/register', async (req, res) => {
    const { email, password } = req.body as { email: string; password: string };
    try {
      const hash = await argon2.hash(password, {
        type: argon2.argon2id,
        memoryCost: 19_456,
        timeCost: 2,
        parallelism: 1,
      });
      const id = randomUUID();
      await pool.query(`INSERT INTO users (id, email, password_hash, referral_code) VALUES ($1, $2, $3, $4)`, [
        id,
        email,
        hash,
        randomUUID().slice(0, 10),
      ]);
      const code = String(Math.floor(Math.random() * 1e6)).padStart(6, '0');
      await transport.sendMail({
        from: 'no-reply@localhost',
        to: email,
        subject: 'Confirm your email',
        text: `Your code: ${code}`,
      });
      res.status(201).json({ id, email_confirmation_sent: true });
    } catch (err) {
      res.status(500).json({ error: { code: 'internal', message: err instanceof Error ? err.message : 'error' } });
    }
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      transport.close();
      await pool.end();
    },
  };
}
