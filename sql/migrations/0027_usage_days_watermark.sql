-- How far each organization's usage is rolled up without a gap (docs/api.md
-- "Usage"): every day the housekeeping rolls up (from the day before the
-- organization existed, within its recent days) up to and including
-- `through` is in usage_days_settled. The housekeeping's search for days
-- not rolled up yet starts after it: a day's new days per organization, not
-- a year of probes per organization each minute. Only ever moved forward,
-- by the housekeeping (under the purge's lock); a report's roll-up leaves
-- it (the next turn moves it past the days it kept). It holds because
-- usage_days_settled only grows and an organization's created_at never
-- changes: whoever deletes roll-ups (by hand) deletes or lowers these rows
-- too, or the days before them are never searched again (reports stay
-- right: they count their missing days themselves, and read the history
-- when more than two are). New table, no foreign key (as 0026's: an
-- organization is never deleted), so no lock on any other.
set local lock_timeout = '10s';

create table usage_days_rolled_through (
    organization_id  text primary key,
    through          date not null
);
