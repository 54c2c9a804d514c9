import { Counter, type Registry } from 'prom-client';
import { DELIVERY_STATUSES } from '@shared/events';

export const REGISTRATION_RESULTS = [
  'created',
  'email_taken',
  'rate_limited',
  'invalid',
  'unavailable',
  'error',
] as const;
export const RESEND_RESULTS = ['queued', 'cooldown', 'hourly_cap', 'already_confirmed', 'ignored'] as const;
export type RegistrationResult = (typeof REGISTRATION_RESULTS)[number];
export type ResendResult = (typeof RESEND_RESULTS)[number];

export type AccountsMetrics = ReturnType<typeof createAccountsMetrics>;

/** The accounts service's contract metrics, every label combination started at 0. */
export function createAccountsMetrics(registry: Registry) {
  const registrations = new Counter({
    name: 'accounts_registrations_total',
    help: 'Registration attempts by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of REGISTRATION_RESULTS) registrations.inc({ result }, 0);
  const resends = new Counter({
    name: 'accounts_resend_requests_total',
    help: 'Confirmation-email resend requests by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of RESEND_RESULTS) resends.inc({ result }, 0);
  const deliveryStatuses = new Counter({
    name: 'mail_delivery_status_total',
    help: 'Mail delivery statuses consumed from mail.delivery-status (duplicates not counted)',
    labelNames: ['status', 'error_class'] as const,
    registers: [registry],
  });
  for (const status of DELIVERY_STATUSES) deliveryStatuses.inc({ status, error_class: 'none' }, 0);
  const invalidEvents = new Counter({
    name: 'accounts_invalid_events_total',
    help: 'Consumed messages skipped because they were not valid events (poison messages)',
    labelNames: ['topic'] as const,
    registers: [registry],
  });
  return { registrations, resends, deliveryStatuses, invalidEvents };
}
