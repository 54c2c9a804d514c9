-- Up Migration

-- The mailer's inbox: one row per mail request, keyed by request_id, so a redelivered request is
-- recorded once and never sent twice. `state` says which window a crash died in:
--   pending    -> waiting for its first attempt or a retry (next_attempt_at)
--   sending    -> claimed by a dispatcher, SMTP call in flight until lease_until; a row still here
--                 after its lease expired belongs to a mailer that died mid-send: it is retried and,
--                 if then sent, counted as a possible duplicate
--   sent       -> SMTP accepted it (terminal)
--   failed     -> rejected permanently or retries exhausted (terminal, DLQ record written)
--   superseded -> a newer request of the same user arrived before this one was sent (terminal)
-- `seq` is arrival order: requests are keyed by user id, so one user's requests arrive in order.
CREATE TABLE mailer_requests (
  request_id         uuid PRIMARY KEY,
  seq                bigserial NOT NULL UNIQUE,
  event_id           uuid NOT NULL,
  user_id            uuid NOT NULL,
  recipient          text NOT NULL,
  template           text NOT NULL,
  -- Holds the confirmation code until the mail is sent: needed to (re)send it; never logged.
  vars               jsonb NOT NULL,
  requested_at       timestamptz,
  -- The original Kafka value, so a DLQ record carries the request exactly as it arrived.
  original           text NOT NULL,
  state              text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'superseded')),
  attempts           integer NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz NOT NULL DEFAULT now(),
  lease_until        timestamptz,
  claim_id           uuid,
  possible_duplicate boolean NOT NULL DEFAULT false,
  last_error_class   text CHECK (last_error_class IN ('timeout', 'connection', 'auth', 'rejected', 'circuit_open', 'unknown')),
  smtp_message_id    text,
  received_at        timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  sent_at            timestamptz
);
-- The dispatcher's claim and the retry gauge only look at unfinished rows: keep that index small.
CREATE INDEX mailer_requests_due_idx ON mailer_requests (next_attempt_at) WHERE state IN ('pending', 'sending');
-- Superseding finds a user's unsent requests.
CREATE INDEX mailer_requests_user_unsent_idx ON mailer_requests (user_id, seq) WHERE state IN ('pending', 'sending');

-- Events the mailer owes Kafka (delivery statuses, DLQ records), written in the same transaction as
-- the outcome they announce and deleted once the broker acknowledged them: a status is never lost
-- when the mailer dies between recording an outcome and publishing it.
CREATE TABLE mailer_outbox (
  id         bigserial PRIMARY KEY,
  -- The contract's topic name without the test prefix ('mail.delivery-status', 'mail.requests.dlq').
  topic      text NOT NULL,
  key        text,
  value      text NOT NULL,
  headers    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Down Migration
DROP TABLE mailer_outbox;
DROP TABLE mailer_requests;
