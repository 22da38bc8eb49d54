-- One row the workers' sweeps share: when the last sweep ran and where its
-- page of notebooks ended. Every worker runs the sweep loop; claiming this
-- row (only if the last sweep is an interval old) makes it one sweep per
-- interval however many workers run, each page after the last one's.

create table sweep_state (
    singleton  boolean primary key default true check (singleton),
    swept_at   timestamptz not null default '-infinity',
    after      text not null default ''
);
insert into sweep_state default values;
