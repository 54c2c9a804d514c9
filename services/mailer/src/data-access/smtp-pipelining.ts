import { createRequire } from 'node:module';

/**
 * RFC 2920 PIPELINING for the envelope. nodemailer 7 sends MAIL FROM, waits for its reply, sends the
 * RCPT TOs, waits, sends DATA, waits: three round trips before the message can go. When the server
 * advertises PIPELINING (nodemailer records it after EHLO) this sends MAIL FROM, every RCPT TO and DATA
 * in one write and leaves nodemailer's own reply handlers to read the replies in order: when a handler
 * then sends the next command, that command is already on the wire, so it is not sent again. One
 * round trip instead of three per mail, and two writes and two wake-ups fewer on each side.
 *
 * Outcomes are nodemailer's own: each reply reaches the same handler and gives the same error (a refused
 * MAIL FROM, every recipient refused, a refused DATA). After a refused MAIL FROM or recipient the server
 * answers the commands still in flight with 503/554 (RFC 2920 §3.1); the connection that failed is
 * closed at once by nodemailer (pool and one-off transport alike), which ignores replies after it.
 * LMTP and servers without PIPELINING keep nodemailer's sequence. Applied once, to the very module
 * instance nodemailer uses; a nodemailer whose internals are not the expected ones is left alone.
 */
type Envelope = { rcptQueue?: string[] };

export type PipelinedConnection = {
  options: { lmtp?: boolean };
  _supportedExtensions: string[];
  _socket: { cork: () => void; uncork: () => void };
  _envelope?: Envelope;
  _destroyed?: boolean;
  /** Commands already sent ahead of their turn, in order (this module's state). */
  pipelinedAhead?: string[];
  /** Whether MAIL FROM went out since the envelope began (this module's state). */
  mailFromSent?: boolean;
  _sendCommand: (str: string, logStr?: string) => void;
  _getDsnRcptToArgs: () => string;
  _setEnvelope: (envelope: unknown, callback: (...args: unknown[]) => void) => void;
};

type Prototype = Partial<PipelinedConnection>;

/** `_setEnvelope` that, with PIPELINING, sends the RCPT TOs and DATA together with MAIL FROM. */
export function pipelinedSetEnvelope(original: PipelinedConnection['_setEnvelope']) {
  return function setEnvelope(this: PipelinedConnection, envelope: unknown, callback: (...a: unknown[]) => void) {
    if (this.options.lmtp || !this._supportedExtensions.includes('PIPELINING')) {
      original.call(this, envelope, callback);
      return;
    }
    const socket = this._socket;
    socket.cork();
    try {
      this.pipelinedAhead = undefined;
      this.mailFromSent = false;
      original.call(this, envelope, callback);
      // No MAIL FROM went out (nodemailer refused the envelope itself) or the connection is gone.
      if (!this.mailFromSent || this._destroyed) return;
      const ahead = [...(this._envelope?.rcptQueue ?? [])].map((to) => `RCPT TO:<${to}>${this._getDsnRcptToArgs()}`);
      if (ahead.length === 0) return;
      ahead.push('DATA');
      this.pipelinedAhead = [];
      for (const command of ahead) this._sendCommand(command);
      this.pipelinedAhead = ahead;
    } finally {
      socket.uncork();
    }
  };
}

/** `_sendCommand` that skips a command already sent ahead of its turn (the next one expected, exactly). */
export function skipPipelined(original: PipelinedConnection['_sendCommand']) {
  return function sendCommand(this: PipelinedConnection, str: string, logStr?: string) {
    if (str.startsWith('MAIL FROM:')) this.mailFromSent = true;
    const ahead = this.pipelinedAhead;
    if (ahead !== undefined && ahead.length > 0) {
      if (ahead[0] === str) {
        ahead.shift();
        return;
      }
      // nodemailer went another way (RSET, QUIT): nothing more was sent ahead for it.
      ahead.length = 0;
    }
    original.call(this, str, logStr);
  };
}

let applied = false;

/** Patches nodemailer's SMTPConnection (idempotent); returns whether the patch is in place. */
export function applySmtpPipelining(): boolean {
  if (applied) return true;
  const requireFromHere = createRequire(__filename);
  // Written against nodemailer 7's SMTPConnection, which closes a connection after any failed envelope
  // (so replies to commands sent ahead are never read by another handler): another major is left alone.
  const { version } = requireFromHere('nodemailer/package.json') as { version: string };
  if (!version.startsWith('7.')) return false;
  const SMTPConnection = requireFromHere('nodemailer/lib/smtp-connection') as { prototype: Prototype };
  const proto = SMTPConnection.prototype;
  const { _setEnvelope: setEnvelope, _sendCommand: sendCommand, _getDsnRcptToArgs: dsnArgs } = proto;
  if (typeof setEnvelope !== 'function' || typeof sendCommand !== 'function' || typeof dsnArgs !== 'function') {
    return false;
  }
  proto._setEnvelope = pipelinedSetEnvelope(setEnvelope);
  proto._sendCommand = skipPipelined(sendCommand);
  applied = true;
  return true;
}
