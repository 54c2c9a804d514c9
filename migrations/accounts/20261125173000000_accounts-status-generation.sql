-- Up Migration

-- The DLQ replay generation of the stored delivery status (see the mailer's replay-generation
-- migration): statuses are ordered by generation first, then attempt (delivery-status-order.ts).
ALTER TABLE mail_delivery_status ADD COLUMN generation integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE mail_delivery_status DROP COLUMN generation;
