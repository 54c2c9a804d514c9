-- Up Migration

-- Registrations per client IP in a fixed one-hour window (REGISTER_MAX_PER_IP_PER_HOUR). Kept in
-- PostgreSQL so the limit holds across accounts instances; a slot is reserved (409s included: they
-- probe which addresses exist) before the password is hashed.
CREATE TABLE registration_limits (
  client_ip         text PRIMARY KEY CHECK (length(client_ip) <= 64),
  registrations     integer NOT NULL,
  window_started_at timestamptz NOT NULL
);
CREATE INDEX registration_limits_window_idx ON registration_limits (window_started_at);

-- Down Migration
DROP TABLE registration_limits;
