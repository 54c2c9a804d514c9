-- docker-compose: the mailer's own database beside accounts' one (POSTGRES_DB, "registration").
-- Each service owns its data; `npm run migrate` migrates accounts and the mailer separately.
CREATE DATABASE mailer;
