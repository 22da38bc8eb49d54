-- How far each organization's usage is rolled up without a gap (docs/api.md
-- "Usage"): every day the housekeeping rolls up (from the day before the
-- organization existed, within its recent days) up to and including
-- `through` is in usage_days_settled. The housekeeping's search for days
-- not rolled up yet starts after it: a day's new days per organization, not
-- a year of probes per organization each minute. Only ever moved forward,
-- by the housekeeping (under the purge's lock); a report's roll-up leaves
-- it (the next turn moves it past the days it kept). New table; no lock on
-- any other.
set local lock_timeout = '10s';

create table usage_days_rolled_through (
    organization_id  text primary key references organizations (id) on delete cascade,
    through          date not null
);
