import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Express, Request, Response } from 'express';
import type { DomainDeps } from '../../domain/deps';
import { createConfirmEmail } from '../../domain/confirm-email';
import { createEmailStatus } from '../../domain/email-status';
import { createLogin } from '../../domain/login';
import { createRefreshSession } from '../../domain/refresh-session';
import { createRegisterUser } from '../../domain/register-user';
import { createResendConfirmation } from '../../domain/resend-confirmation';
import { registrationResponse } from '../../domain/registration-response';
import { createWaitForDelivery, type WaitedStatus } from '../../domain/wait-for-delivery';
import { bearerUserId, preferredWaitSeconds, requireJsonBody } from './middleware';

export const API = '/api/v1';
const MAX_PREFER_WAIT_S = 10;
export const OPENAPI_FILE = path.join(__dirname, '..', '..', '..', 'openapi.json');

/** The contract's HTTP interface; each handler only translates between HTTP and one use case. */
export function mountApiRoutes(app: Express, deps: DomainDeps & { commonPasswords: ReadonlySet<string> }): void {
  const registerUser = createRegisterUser(deps);
  const login = createLogin(deps);
  const refreshSession = createRefreshSession(deps);
  const confirmEmail = createConfirmEmail(deps);
  const resend = createResendConfirmation(deps);
  const emailStatus = createEmailStatus(deps);
  const waitForDelivery = createWaitForDelivery(deps);
  const openapi = readFileSync(OPENAPI_FILE, 'utf8');

  app.get(`${API}/openapi.json`, (_req, res) => {
    res.type('application/json').send(openapi);
  });

  app.post(`${API}/usr/register`, requireJsonBody, async (req: Request, res: Response) => {
    const registration = await registerUser(req.body, req.ip);
    // Debug: one line per registration is a hot-path cost (accounts_registrations_total counts them).
    req.log.debug(
      {
        user_id: registration.user.id,
        mail_request_id: registration.requestId,
        referred: registration.user.referred_by !== null,
      },
      'user registered',
    );
    let waited: WaitedStatus = { status: 'queued', error_class: null, next_attempt_at: null };
    // Prefer: wait=N overrides the server's default (REGISTER_WAIT_MS); a known mail outage ends any wait at once.
    const waitS = preferredWaitSeconds(req.header('prefer'), MAX_PREFER_WAIT_S);
    const waitMs = waitS !== undefined ? waitS * 1000 : deps.config.REGISTER_WAIT_MS;
    if (waitMs > 0) {
      const aborted = new AbortController();
      res.on('close', () => aborted.abort());
      try {
        waited = await waitForDelivery(registration.requestId, waitMs, aborted.signal);
      } catch (err) {
        // The user is committed: a failing status read must not turn the 201 into an error.
        req.log.warn(
          { err: { message: err instanceof Error ? err.message : String(err) } },
          'delivery status unreadable during the wait',
        );
      }
    }
    if (waitS !== undefined && waitS > 0) res.set('Preference-Applied', `wait=${waitS}`);
    res.status(201).json(registrationResponse(registration, waited, deps));
  });

  app.post(`${API}/usr/login`, requireJsonBody, async (req: Request, res: Response) => {
    const { user, session } = await login(req.body, req.ip);
    res.json({ access_token: session.access_token, refresh_token: session.refresh_token, user_data: user });
  });

  app.post(`${API}/usr/token/refresh`, requireJsonBody, async (req: Request, res: Response) => {
    res.json(await refreshSession(req.body));
  });

  app.post(`${API}/usr/email/confirm`, requireJsonBody, async (req: Request, res: Response) => {
    const userId = bearerUserId(req, deps.tokens);
    res.json(await confirmEmail(userId, req.body));
  });

  app.post(`${API}/usr/email/resend`, requireJsonBody, async (req: Request, res: Response) => {
    const result = req.header('authorization')
      ? await resend.forUser(bearerUserId(req, deps.tokens))
      : await resend.forEmail(req.body);
    res.status(202).json(result);
  });

  app.get(`${API}/usr/email/status`, async (req: Request, res: Response) => {
    res.json(await emailStatus(bearerUserId(req, deps.tokens)));
  });
}
