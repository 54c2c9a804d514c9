-- Up Migration

-- A DLQ replay starts a request's delivery over (attempts from 1 again). Its statuses carry the replay
-- generation (0 for the original delivery, +1 per replay), which accounts orders before the attempt:
-- a replay's `sent` at attempt 1 replaces the earlier `failed` at attempt N.
ALTER TABLE mailer_requests ADD COLUMN generation integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE mailer_requests DROP COLUMN generation;
