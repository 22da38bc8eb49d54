-- What every plain list's statement shares (members, tokens, teams, team
-- memberships, configs, offers): its `visible` rows (each with `created_at`
-- and `id`) paged newest first from the marker's key, `limit` + 1 of them
-- fetched (the extra one says whether there is a next page), and the page's
-- first columns as api/responses.py `plain_list` reads them. The statement
-- goes on with its `items`. (Notebook pages have statements of their own,
-- each planned for its index: api_notebooks.sql.)

-- fragment: keyset_page
-- After a statement's `with visible as (...`, before its `items` column.
), keys as (
    select v.*, row_number() over (order by v.created_at desc, v.id desc) as rn
      from visible v
     where %(after_at)s::timestamptz is null
        or (v.created_at, v.id) < (%(after_at)s::timestamptz, %(after_id)s::text)
     order by v.created_at desc, v.id desc
     limit %(fetch)s
), rows as (select * from keys where rn <= %(limit)s)
select
    (select count(*) from visible) as total,
    (select count(*) from keys) > %(limit)s as more,
    (select created_at from rows order by rn desc limit 1) as last_at,
    (select id from rows order by rn desc limit 1) as last_id,
