-- Up Migration

-- Issue 13: the consumed delivery status keeps which SMTP provider sent the mail (a label, never a
-- credential) and, while deferred, when the mailer will try again (shown by /email/status).
ALTER TABLE mail_delivery_status ADD COLUMN provider text, ADD COLUMN next_attempt_at timestamptz;

-- Down Migration
ALTER TABLE mail_delivery_status DROP COLUMN next_attempt_at, DROP COLUMN provider;
