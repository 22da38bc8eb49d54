-- An owner's offer of a notebook to a colleague, who accepts it (and becomes
-- its owner, its running slot theirs) or declines it (docs/api.md "Offering a
-- notebook"). One per notebook: a new offer replaces the pending one. Gone
-- with the notebook; an accepted, declined or withdrawn offer is deleted (the
-- notebook's history keeps what happened).

create table notebook_offers (
    notebook_id      text primary key references notebooks (id) on delete cascade,
    organization_id  text not null references organizations (id),
    from_member_id   text not null references members (id),
    to_member_id     text not null references members (id),
    created_at       timestamptz not null,
    expires_at       timestamptz not null
);

-- api_offers_to_me: a member's offers, newest first.
create index notebook_offers_to on notebook_offers (to_member_id, created_at desc, notebook_id desc);
