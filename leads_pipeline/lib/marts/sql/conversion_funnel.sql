-- conversion_funnel: per distributor, form, campaign and weekly cohort (Monday, UTC) of lead creation: leads, how many
-- reached assigned / contacted, converted and rejected now, stage-to-stage rates, median and p90 hours from lead to
-- first contact, and the stages Meta accepted through the Conversions API for those leads.
-- Definitions: docs/analytics.md. The CTEs `ev` and `facts` are the same in lead_daily.sql (a test keeps them equal).
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
-- Stages Meta accepted through the Conversions API (the outbox of lib/capi), per lead: one row per lead, so the join
-- below multiplies no lead and the percentiles stay over leads.
reported AS (
    SELECT meta_lead_id, count(*) AS stages
    FROM conversion_events
    WHERE status = 'sent'
    GROUP BY meta_lead_id
),
g AS (
    SELECT f.distributor, f.form_id, f.campaign_id, max(f.campaign_name) AS campaign_name,
           CAST(date_trunc('week', f.created_time) AS DATE) AS cohort_week,
           count(*) AS leads,
           count(*) FILTER (WHERE f.reached_rank >= 1) AS reached_assigned,
           count(*) FILTER (WHERE f.reached_rank >= 2) AS reached_contacted,
           count(*) FILTER (WHERE f.status = 'converted') AS converted,
           count(*) FILTER (WHERE f.status = 'rejected') AS rejected,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY f.hours_to_first_contact) AS median_hours,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY f.hours_to_first_contact) AS p90_hours,
           CAST(COALESCE(sum(r.stages), 0) AS BIGINT) AS stages_reported_to_meta
    FROM facts f LEFT JOIN reported r ON r.meta_lead_id = f.meta_lead_id
    GROUP BY f.distributor, f.form_id, f.campaign_id, CAST(date_trunc('week', f.created_time) AS DATE)
)
SELECT distributor, form_id, campaign_id, campaign_name, cohort_week, leads,
       reached_assigned, reached_contacted, converted, rejected,
       CAST(reached_assigned AS DOUBLE PRECISION) / leads AS rate_assigned,
       CAST(reached_contacted AS DOUBLE PRECISION) / leads AS rate_contacted,
       CAST(converted AS DOUBLE PRECISION) / NULLIF(reached_contacted, 0) AS rate_converted,
       median_hours AS median_hours_to_first_contact,
       p90_hours AS p90_hours_to_first_contact,
       stages_reported_to_meta,
       CURRENT_TIMESTAMP AS refreshed_at
FROM g
