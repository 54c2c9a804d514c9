-- Up Migration

-- The accounts housekeeping job deletes old dedupe records and expired login-failure windows in
-- batches; these indexes let it find them without scanning the tables.
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
CREATE INDEX login_throttle_window_idx ON login_throttle (window_started_at);

-- Down Migration
DROP INDEX login_throttle_window_idx;
DROP INDEX processed_events_processed_at_idx;
