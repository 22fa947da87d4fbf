-- lead_daily: a daily series per distributor and UTC day: leads created (organic / paid), first contacted, and now
-- converted or rejected (each lead counted once per figure, on the day it reached its current outcome).
-- Every day from the distributor's first lead to today has a row (zeros where nothing happened), so a daily chart
-- never skips a day. The CTEs `ev` and `facts` are the same in conversion_funnel.sql (a test keeps them equal).
WITH
-- lead facts: begin
-- Stage rank: new/other 0, assigned 1, contacted 2, converted 3 (rejected is an outcome, not a stage). A lead reached
-- a stage when its status, or any to_status/from_status of its interactions, ranks at or beyond it.
ev AS (
    SELECT meta_lead_id,
           max(GREATEST(CASE to_status WHEN 'assigned' THEN 1 WHEN 'contacted' THEN 2 WHEN 'converted' THEN 3 ELSE 0 END,
                        CASE from_status WHEN 'assigned' THEN 1 WHEN 'contacted' THEN 2 WHEN 'converted' THEN 3 ELSE 0 END))
               AS ev_rank,
           -- first contact: the earliest outbound (or direction not given) call, email or SMS
           min(CASE WHEN kind IN ('call', 'email', 'sms') AND COALESCE(direction, 'outbound') = 'outbound'
                    THEN occurred_at END) AS first_outbound_at,
           max(CASE WHEN to_status = 'converted' THEN occurred_at END) AS last_to_converted_at,
           max(CASE WHEN to_status = 'rejected' THEN occurred_at END) AS last_to_rejected_at
    FROM lead_interactions
    WHERE to_status IS NOT NULL OR from_status IS NOT NULL
       OR (kind IN ('call', 'email', 'sms') AND COALESCE(direction, 'outbound') = 'outbound')
    GROUP BY meta_lead_id
),
facts AS (
    SELECT l.meta_lead_id, l.distributor, l.form_id, l.campaign_id, l.campaign_name, l.created_time, l.status,
           l.is_organic,
           GREATEST(CASE l.status WHEN 'assigned' THEN 1 WHEN 'contacted' THEN 2 WHEN 'converted' THEN 3 ELSE 0 END,
                    COALESCE(ev.ev_rank, 0)) AS reached_rank,
           COALESCE(l.first_contacted_at, ev.first_outbound_at) AS first_contact_at,
           -- GREATEST ignores NULLs on both backends: a lead never contacted must stay NULL, not 0.
           CASE WHEN COALESCE(l.first_contacted_at, ev.first_outbound_at) IS NOT NULL THEN GREATEST(0.0, CAST(
               (extract(epoch FROM COALESCE(l.first_contacted_at, ev.first_outbound_at))
                - extract(epoch FROM l.created_time)) / 3600.0 AS DOUBLE PRECISION)) END AS hours_to_first_contact,
           -- when the lead reached its current outcome (converted / rejected)
           COALESCE(l.status_changed_at,
                    CASE l.status WHEN 'converted' THEN ev.last_to_converted_at
                                  WHEN 'rejected' THEN ev.last_to_rejected_at END,
                    l.updated_at) AS outcome_at
    FROM leads l LEFT JOIN ev ON ev.meta_lead_id = l.meta_lead_id
),
-- lead facts: end
parts AS (
    SELECT distributor, CAST(created_time AS DATE) AS day, 1 AS new_leads,
           CASE WHEN is_organic THEN 1 ELSE 0 END AS organic_leads,
           CASE WHEN is_organic = FALSE THEN 1 ELSE 0 END AS paid_leads,
           0 AS contacted, 0 AS converted, 0 AS rejected
    FROM facts
    UNION ALL
    SELECT distributor, CAST(first_contact_at AS DATE), 0, 0, 0, 1, 0, 0
    FROM facts WHERE first_contact_at IS NOT NULL
    UNION ALL
    SELECT distributor, CAST(outcome_at AS DATE), 0, 0, 0, 0,
           CASE WHEN status = 'converted' THEN 1 ELSE 0 END, CASE WHEN status = 'rejected' THEN 1 ELSE 0 END
    FROM facts WHERE status IN ('converted', 'rejected')
),
per_day AS (
    SELECT distributor, day, sum(new_leads) AS new_leads, sum(organic_leads) AS organic_leads,
           sum(paid_leads) AS paid_leads, sum(contacted) AS contacted, sum(converted) AS converted,
           sum(rejected) AS rejected
    FROM parts
    GROUP BY distributor, day
),
-- Each distributor's days: from its first day with anything to today (or to its last day, if that is later).
-- date - date is a number of days and date + integer a date on both backends.
days AS (
    SELECT b.distributor, b.first_day + CAST(s.i AS INTEGER) AS day
    FROM (SELECT distributor, min(day) AS first_day, max(day) AS last_day FROM per_day GROUP BY distributor) AS b
    CROSS JOIN LATERAL generate_series(0, CAST(GREATEST(b.last_day, CURRENT_DATE) - b.first_day AS INTEGER)) AS s(i)
)
SELECT d.distributor, d.day,
       COALESCE(p.new_leads, 0) AS new_leads,
       COALESCE(p.organic_leads, 0) AS organic_leads,
       COALESCE(p.paid_leads, 0) AS paid_leads,
       COALESCE(p.contacted, 0) AS contacted,
       COALESCE(p.converted, 0) AS converted,
       COALESCE(p.rejected, 0) AS rejected,
       CURRENT_TIMESTAMP AS refreshed_at
FROM days d
LEFT JOIN per_day p ON p.distributor = d.distributor AND p.day = d.day
