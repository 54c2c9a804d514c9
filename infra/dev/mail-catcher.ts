import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

/**
 * The development mail catcher `npm start` runs when SMTP_HOST is not set: an SMTP server that
 * accepts every message, prints one line per mail, and shows an inbox page (and JSON) over HTTP.
 * Development only: it keeps the last 500 messages in memory.
 */
export type CaughtMail = {
  id: number;
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  receivedAt: string;
};

export type MailCatcher = { smtpPort: number; webPort: number; messages: CaughtMail[]; close: () => Promise<void> };

export async function startMailCatcher(opts: {
  smtpPort: number;
  webPort: number;
  host?: string;
  print?: (line: string) => void;
}): Promise<MailCatcher> {
  const host = opts.host ?? '127.0.0.1';
  const print = opts.print ?? ((line: string) => console.log(line));
  const messages: CaughtMail[] = [];
  let nextId = 1;

  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          const mail: CaughtMail = {
            id: nextId++,
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            receivedAt: new Date().toISOString(),
          };
          messages.unshift(mail);
          messages.length = Math.min(messages.length, 500);
          print(
            `[mail-catcher] mail #${mail.id} to ${mail.to.join(', ')}: "${mail.subject}" — ${mail.text.replace(/\s+/g, ' ').slice(0, 160)}`,
          );
          callback();
        })
        .catch((err: Error) => callback(err));
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.server.once('error', reject);
    smtp.listen(opts.smtpPort, host, () => resolve());
  });

  const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const web = http.createServer((req, res) => {
    if (req.url === '/api/messages') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(messages));
      return;
    }
    const rows = messages
      .map(
        (m) =>
          `<article><h2>#${m.id} ${escape(m.subject)}</h2><p><b>to</b> ${escape(m.to.join(', '))} · <b>from</b> ${escape(m.from)} · ${escape(m.receivedAt)}</p><pre>${escape(m.text)}</pre></article>`,
      )
      .join('\n');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    });
    res.end(
      `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>Dev inbox (${messages.length})</title>` +
        `<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}article{border-bottom:1px solid #ccc}pre{white-space:pre-wrap}</style>` +
        `<h1>Dev inbox — ${messages.length} message(s)</h1>${rows || '<p>No mail yet.</p>'}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    web.once('error', reject);
    web.listen(opts.webPort, host, () => resolve());
  });

  return {
    smtpPort: (smtp.server.address() as AddressInfo).port,
    webPort: (web.address() as AddressInfo).port,
    messages,
    close: async () => {
      web.closeAllConnections();
      await new Promise<void>((resolve) => web.close(() => resolve()));
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    },
  };
}

if (require.main === module) {
  const smtpPort = Number(process.env.MAIL_CATCHER_SMTP_PORT ?? 1025);
  const webPort = Number(process.env.MAIL_CATCHER_WEB_PORT ?? 1080);
  startMailCatcher({ smtpPort, webPort }).then(
    (c) => {
      console.log(`[mail-catcher] SMTP on 127.0.0.1:${c.smtpPort}, inbox at http://127.0.0.1:${c.webPort}/`);
      const stop = () => void c.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
    (err: unknown) => {
      console.error(`[mail-catcher] ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
