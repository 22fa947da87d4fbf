-- lead_stats: the seed's counts per distributor, and one row for all distributors together
-- (distributor = '__all__'; always present, zeros when there are no leads).
-- A mart file is one SELECT: the refresh replaces the table's rows with its result in one transaction.
SELECT COALESCE(distributor, '__all__') AS distributor,
       count(*) AS total,
       count(*) FILTER (WHERE status = 'new') AS new,
       count(*) FILTER (WHERE status = 'assigned') AS assigned,
       count(*) FILTER (WHERE status = 'contacted') AS contacted,
       count(*) FILTER (WHERE status = 'converted') AS converted,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       CURRENT_TIMESTAMP AS refreshed_at
FROM leads
GROUP BY GROUPING SETS ((distributor), ())
