import net from 'node:net';

type SocketCallback = (err: Error | null, socketOptions?: { connection: net.Socket }) => void;

/**
 * nodemailer's `getSocket` hook: creates the TCP socket itself so it can set TCP_NODELAY. Without it
 * every SMTP command waits for the peer's delayed ACK (Nagle, ~40 ms per message, FIELD-NOTES).
 * The socket is handed over while still connecting: nodemailer attaches its error handler and
 * timeouts at once (a refused connection fails the pooled resource the usual way, and the greeting
 * timeout covers the TCP connect), then greets over it, upgrades it with STARTTLS, or wraps it in TLS
 * at once (smtps) — TLS runs over this same socket, so all three kinds of connection are no-delay.
 */
export function noDelaySocket(live?: Set<net.Socket>) {
  return (options: { host?: string; port?: number }, callback: SocketCallback): void => {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port: options.port ?? 25, noDelay: true });
    socket.setNoDelay(true);
    // `live`: the sockets still open, so that a reset can cut the ones busy with a mail.
    if (live) {
      live.add(socket);
      socket.once('close', () => live.delete(socket));
    }
    callback(null, { connection: coalesceWrites(socket) });
  };
}

/**
 * No-delay sends every write as it comes, and nodemailer writes a message in pieces: headers, body,
 * "\r\n", ".\r\n" — seven writes (syscalls, segments) per mail where SMTP without PIPELINING needs four
 * (MAIL, RCPT, DATA, the message). So the writes of one turn of the event loop are corked and go out
 * together at its end (setImmediate). A command still leaves at once, as its reply is awaited. With the
 * envelope pipelined (smtp-pipelining.ts) a mail is two writes: MAIL FROM + RCPT TO + DATA, then the
 * message. (Over TLS, writes bypass this socket's `write`: TLS records are written to its handle.)
 */
export function coalesceWrites(socket: net.Socket): net.Socket {
  const write = socket.write.bind(socket);
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: Parameters<net.Socket['write']>) => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write(...args);
  }) as net.Socket['write'];
  return socket;
}
