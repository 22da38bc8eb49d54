-- A token made with an expiring token (the console's 12 h sign-in token) is
-- bound to it: it never outlives it (api/members.py caps its expiry), and
-- revoking the maker revokes it too, so signing out of a console ends every
-- token made in it. Tokens made with a lasting token stand on their own.

alter table api_tokens add column made_by text references api_tokens (id) on delete set null;
create index api_tokens_made_by on api_tokens (made_by) where made_by is not null;
