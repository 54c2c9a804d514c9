import type { MailRequestedPayload } from '@shared/events';
import type { RenderedMail } from '../data-access/rendered-mail';
import { SendFailure } from './send-failure';

// One plain address and nothing else: no display name, no list, no whitespace or control characters
// (so CR/LF can never start a header or add a recipient), no quoting or comments.
const LOCAL_PART = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@/.source;
const DOMAIN_LABEL = /[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?/.source;
const PLAIN_ADDRESS = new RegExp(`${LOCAL_PART}${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})+$`);

/** The recipient, or a permanent `rejected` failure: a malformed address never improves on retry. */
export function validateRecipient(to: string): string {
  if (to.length > 320 || !PLAIN_ADDRESS.test(to)) {
    throw new SendFailure('rejected', false, 'recipient is not a single plain email address');
  }
  return to;
}

/** Control characters (CR, LF, tabs, NUL...) in a name become spaces: they can only do harm in a mail. */
function cleanName(value: string | null | undefined): string {
  return (
    (value ?? '')
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
  );
}

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function formatExpiry(expiresAt: string | undefined): string | undefined {
  if (!expiresAt) return undefined;
  const date = new Date(expiresAt);
  if (Number.isNaN(date.getTime())) return undefined;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** How much of the user's name the greeting carries (a name is not a place for a message). */
export const MAX_GREETING_NAME = 40;

/**
 * The `email_confirmation` mail: the 6-digit code first and large. The user-supplied name appears in
 * the greeting only — escaped, flattened and cut to MAX_GREETING_NAME characters — never in the
 * Subject, which inboxes show before the mail is opened: a sign-up form must not let anyone send
 * "Your account is suspended, call …" under our name.
 */
export function renderConfirmationMail(request: Pick<MailRequestedPayload, 'to' | 'vars'>): RenderedMail {
  const to = validateRecipient(request.to);
  const fullName = [cleanName(request.vars.first_name), cleanName(request.vars.last_name)].filter(Boolean).join(' ');
  const chars = [...fullName];
  const name =
    chars.length > MAX_GREETING_NAME
      ? `${chars
          .slice(0, MAX_GREETING_NAME - 1)
          .join('')
          .trimEnd()}…`
      : fullName;
  const code = request.vars.code;
  const expiry = formatExpiry(request.vars.expires_at);
  const greeting = name ? `Hello ${name},` : 'Hello,';
  const subject = 'Confirm your email address';

  const text = [
    greeting,
    '',
    'Your confirmation code is:',
    '',
    `    ${code}`,
    '',
    expiry ? `Enter it in the app before ${expiry}.` : 'Enter it in the app to confirm your email address.',
    '',
    'If you did not create an account, ignore this email.',
    '',
  ].join('\n');

  const closing = expiry
    ? `Enter it in the app before ${expiry}.`
    : 'Enter it in the app to confirm your email address.';
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>
<body style="font-family: sans-serif; color: #222;">
<p>${escapeHtml(greeting)}</p>
<p>Your confirmation code is:</p>
<p style="font-size: 32px; font-weight: bold; letter-spacing: 6px; font-family: monospace;">${escapeHtml(code)}</p>
<p>${escapeHtml(closing)}</p>
<p style="color: #666;">If you did not create an account, ignore this email.</p>
</body></html>
`;
  return { to, subject, text, html };
}
