-- Where leads come from and how they do: per distributor, platform (fb / ig), paid or organic, and week of arrival.
-- conversion = converted ÷ leads (the one definition of conversion in docs/analytics.md).
SELECT
    distributor,
    coalesce(platform, 'unknown') AS platform,
    CASE WHEN is_organic THEN 'organic' WHEN NOT is_organic THEN 'paid' ELSE 'unknown' END AS source,
    CAST(date_trunc('week', created_time) AS DATE) AS week,
    count(*) AS leads,
    count(*) FILTER (WHERE first_contacted_at IS NOT NULL OR status IN ('contacted', 'converted')) AS contacted,
    count(*) FILTER (WHERE status = 'converted') AS converted,
    round(CAST(count(*) FILTER (WHERE status = 'converted') AS NUMERIC) / count(*), 4) AS conversion
FROM leads
GROUP BY 1, 2, 3, 4
