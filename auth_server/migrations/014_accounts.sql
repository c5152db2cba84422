-- Accounts people create themselves (issue 18): sign-up, email verification and password reset
-- find users by their email address, compared in lower case (auth_server/stores/users.py).
-- Not unique: an address may stand on several accounts until one of them verifies it, and
-- operators may give one address to several accounts (`tessera user update --email`).
CREATE INDEX users_email_lower ON users (lower(email));
