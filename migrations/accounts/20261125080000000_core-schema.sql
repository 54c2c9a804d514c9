-- Up Migration

-- Users. Emails are unique case-insensitively (lower(email)); the address keeps the case it was given.
CREATE TABLE users (
  id                 uuid PRIMARY KEY,
  email              text NOT NULL CHECK (length(email) <= 320),
  password_hash      text NOT NULL,
  first_name         text CHECK (length(first_name) <= 200),
  last_name          text CHECK (length(last_name) <= 200),
  referral_code      text NOT NULL UNIQUE,
  email_confirmed_at timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Affiliate links: one referrer per user, set at registration and never changed.
CREATE TABLE affiliates (
  referred_user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  referrer_user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (referred_user_id <> referrer_user_id)
);
CREATE INDEX affiliates_referrer_idx ON affiliates (referrer_user_id);

CREATE FUNCTION affiliates_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'affiliate links are immutable' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER affiliates_no_update BEFORE UPDATE ON affiliates
  FOR EACH ROW EXECUTE FUNCTION affiliates_immutable();

-- Confirmation requests: the 6-digit code is stored hashed; a newer request supersedes older ones.
CREATE TABLE email_confirmations (
  request_id  uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash   text NOT NULL,
  expires_at  timestamptz NOT NULL,
  attempts    integer NOT NULL DEFAULT 0,
  state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'consumed', 'superseded')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  consumed_at timestamptz
);
CREATE INDEX email_confirmations_user_idx ON email_confirmations (user_id, created_at DESC);

-- Refresh-token families: every refresh rotates; replaying a used token revokes its family.
CREATE TABLE refresh_tokens (
  jti        uuid PRIMARY KEY,
  family_id  uuid NOT NULL,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- The transactional outbox. A row is written in the same transaction as the state it announces and
-- deleted by the relay once the broker acknowledged it, so the table (and its index) holds only
-- pending rows. `topic` is the contract's topic name; `key` the Kafka key (the user id).
CREATE TABLE outbox (
  id             bigserial PRIMARY KEY,
  event_id       uuid NOT NULL UNIQUE,
  topic          text NOT NULL,
  key            text NOT NULL,
  type           text NOT NULL,
  version        integer NOT NULL DEFAULT 1,
  aggregate_type text NOT NULL,
  occurred_at    timestamptz NOT NULL,
  payload        jsonb NOT NULL,
  headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts       integer NOT NULL DEFAULT 0,
  last_error     text
);
-- The relay takes the oldest pending row per key: (key, id) answers that without a sort.
CREATE INDEX outbox_key_id_idx ON outbox (key, id);

-- Wake the relay at commit: NOTIFY is transactional, delivered only if the insert commits, and
-- several inserts of one transaction collapse into one notification.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The accounts service's view of each mail request's delivery, fed by mail.delivery-status.
CREATE TABLE mail_delivery_status (
  request_id        uuid PRIMARY KEY,
  user_id           uuid NOT NULL,
  status            text NOT NULL CHECK (status IN ('queued', 'sent', 'deferred', 'failed')),
  attempt           integer NOT NULL DEFAULT 0,
  error_class       text,
  smtp_message_id   text,
  last_event_id     uuid,
  event_occurred_at timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_delivery_status_user_idx ON mail_delivery_status (user_id);

-- Consumer-side dedupe: an event id is applied once per consumer.
CREATE TABLE processed_events (
  consumer     text NOT NULL,
  event_id     uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Down Migration
DROP TABLE processed_events;
DROP TABLE mail_delivery_status;
DROP TRIGGER outbox_notify_insert ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
DROP TABLE refresh_tokens;
DROP TABLE email_confirmations;
DROP TRIGGER affiliates_no_update ON affiliates;
DROP FUNCTION affiliates_immutable();
DROP TABLE affiliates;
DROP TABLE users;
