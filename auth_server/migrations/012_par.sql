-- Issue 17: pushed authorization requests (RFC 9126). A client registered with
-- require_pushed_authorization_requests (RFC 9126 §6) is answered at /authorize only for a request
-- it pushed to the PAR endpoint first; the pushed requests themselves live in Redis.
ALTER TABLE clients
    ADD COLUMN require_pushed_authorization_requests boolean NOT NULL DEFAULT false;
