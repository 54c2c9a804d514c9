-- Up Migration

-- The inbox's two partial indexes hold only unfinished rows, so to a planner whose statistics predate
-- the traffic (a table analyzed while nothing was pending, or never: a server running without
-- autovacuum) they look empty, and a prepared statement's cached generic plan keeps that view. Any
-- statement saying `state = 'sending'` could then use them, and did: the mark-sent update and the
-- intake's per-user probe scanned the whole due index, dead entries of every mail sent since the last
-- VACUUM included, instead of probing the primary key or the user index: their cost grew with every
-- mail sent. Each index now carries one more predicate term, which only the statements meant for it
-- state; to any other statement it is unusable, whatever the statistics say.
DROP INDEX mailer_requests_due_idx;
-- The claim, the deferral while every breaker is open, the retry gauge.
CREATE INDEX mailer_requests_due_idx ON mailer_requests (next_attempt_at)
  WHERE state IN ('pending', 'sending') AND next_attempt_at > '-infinity';
DROP INDEX mailer_requests_user_unsent_idx;
-- The intake's probe for a user's pending request, superseding.
CREATE INDEX mailer_requests_user_unsent_idx ON mailer_requests (user_id, seq)
  WHERE state IN ('pending', 'sending') AND seq > 0;

-- Down Migration
DROP INDEX mailer_requests_user_unsent_idx;
CREATE INDEX mailer_requests_user_unsent_idx ON mailer_requests (user_id, seq) WHERE state IN ('pending', 'sending');
DROP INDEX mailer_requests_due_idx;
CREATE INDEX mailer_requests_due_idx ON mailer_requests (next_attempt_at) WHERE state IN ('pending', 'sending');
