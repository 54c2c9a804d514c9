-- Up Migration

-- The plaintext confirmation code leaves mailer_requests on every terminal transition: `vars` loses
-- `code` and `original` (the Kafka value, code included) becomes ''. Rows that ended before this
-- change are redacted here once.
COMMENT ON COLUMN mailer_requests.vars IS 'Template variables; holds the confirmation code only while the request is pending or sending (removed on sent, failed, superseded). Never logged.';
COMMENT ON COLUMN mailer_requests.original IS 'The original Kafka value while the request is unfinished (a DLQ record carries it); emptied on sent, failed, superseded.';
UPDATE mailer_requests SET vars = vars - 'code', original = ''
 WHERE state IN ('sent', 'failed', 'superseded') AND (vars ? 'code' OR original <> '');

-- Retention (MAIL_RETENTION_DAYS): the periodic delete finds old terminal rows by updated_at.
CREATE INDEX mailer_requests_terminal_idx ON mailer_requests (updated_at) WHERE state IN ('sent', 'failed', 'superseded');

-- Down Migration
DROP INDEX mailer_requests_terminal_idx;
COMMENT ON COLUMN mailer_requests.vars IS NULL;
COMMENT ON COLUMN mailer_requests.original IS NULL;
