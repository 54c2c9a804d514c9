-- Up Migration

-- Login attempts per (address, client IP), reserved BEFORE the password is verified (one statement
-- that increments only below the limit), so a burst of concurrent guesses cannot all pass a read of
-- the counter. login_throttle (per address) is the higher ceiling across every client IP; its
-- `failures` column now counts reserved attempts too. A success clears the pair and the address.
CREATE TABLE login_attempts (
  address           text NOT NULL CHECK (length(address) <= 320),
  client_ip         text NOT NULL CHECK (length(client_ip) <= 64),
  attempts          integer NOT NULL,
  window_started_at timestamptz NOT NULL,
  PRIMARY KEY (address, client_ip)
);
CREATE INDEX login_attempts_window_idx ON login_attempts (window_started_at);

-- Down Migration
DROP TABLE login_attempts;
