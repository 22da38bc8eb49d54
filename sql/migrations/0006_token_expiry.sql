-- An API token may carry an expiry (`expiresInSeconds` at creation). Past it
-- the token authenticates nothing and the proxy sessions it opened end, as if
-- it had been revoked. The console signs in with such a token (12 h) so that
-- signing out, or just leaving, ends what it opened.

alter table api_tokens add column expires_at timestamptz;
