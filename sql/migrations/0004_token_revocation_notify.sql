-- A proxy session is bound to the API token whose `open` minted its login
-- (proxy_target checks it is not revoked). Tell the proxy when a token is
-- revoked or removed, so what it opened ends within seconds. The payload is
-- the token's member ('member:<id>'): the proxy re-checks that member's
-- connections, and only those opened with the revoked token fail the check.

create trigger api_tokens_proxy_notify
after update of revoked_at on api_tokens
for each row
when (old.revoked_at is distinct from new.revoked_at)
execute function notebooks_proxy_notify_member();

create trigger api_tokens_proxy_notify_delete
after delete on api_tokens
for each row execute function notebooks_proxy_notify_member();
