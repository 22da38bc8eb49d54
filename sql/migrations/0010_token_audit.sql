-- Who made and who revoked each API token: an org admin may make a token for
-- a colleague (and see its secret once), and revoke anyone's. NULL: the
-- operator's `notebooks admin` or the first-run set-up, or a row from before.

alter table api_tokens
    add column created_by text references members (id),
    add column revoked_by text references members (id);
