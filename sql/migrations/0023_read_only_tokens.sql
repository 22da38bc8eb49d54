-- Read-only API tokens (docs/api.md "Members and tokens"): a script that
-- backs up notebooks' files or reads usage holds a token that can change
-- nothing, start nothing and open nothing, so a leaked one is a leak of what
-- it reads, not of the member's whole power. A column with a constant
-- default: no rewrite, every older token keeps what it could do.
set local lock_timeout = '10s';

alter table api_tokens add column read_only boolean not null default false;
