-- Up Migration

-- Failed logins per address (lower(email)), in a fixed window opened by the first failure. Kept in
-- PostgreSQL, not in process memory, so the limit holds across every accounts instance.
CREATE TABLE login_throttle (
  address           text PRIMARY KEY CHECK (length(address) <= 320),
  failures          integer NOT NULL,
  window_started_at timestamptz NOT NULL
);

-- The resend policy counts a user's confirmation requests of the last hour and reads the newest one.
-- email_confirmations_user_idx (user_id, created_at DESC) from the core schema already serves both.

-- Down Migration
DROP TABLE login_throttle;
