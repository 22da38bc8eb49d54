-- An email names one person however it is capitalised: Ann@example.com and
-- ann@example.com are the same member of an organization. The address is
-- kept as written; uniqueness compares it lower-cased. (Creating the index
-- fails if an organization already holds two such members: merge them first.)

create unique index members_org_email_ci on members (organization_id, lower(email));
alter table members drop constraint members_organization_id_email_key;
