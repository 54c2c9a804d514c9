import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type SelfSignedCert = { key: string; cert: string };

let cached: SelfSignedCert | undefined;

/**
 * A self-signed certificate for 127.0.0.1 / localhost, made at test time with `openssl req -x509`
 * (node has no certificate generator). One per process; never committed. The certificate is its own
 * CA: a client trusts it through SMTP_TLS_CA.
 */
export function selfSignedCert(): SelfSignedCert {
  if (cached) return cached;
  const dir = mkdtempSync(path.join(tmpdir(), 'rp-tls-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    cached = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
