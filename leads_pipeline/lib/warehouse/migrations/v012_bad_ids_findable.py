"""Migration 12: raw rows of leads with a bad id keep the id Meta sent."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "raw rows of leads with a bad id keep the id Meta sent"


def statements(d: Dialect) -> list[str]:
    """``raw_leads.meta_lead_id`` of a record whose id is not a string of digits (``bad_id``) was NULL, so a privacy
    request naming that id erased the quarantined row but left its raw payload — names, phones, answers — behind.
    Ingest now lands the id as Meta sent it (``ingest.parse.sent_id``); this fills it in for rows landed before, from
    their ``rejected_leads`` row (same distributor, ``reject_key`` = ``raw_key``), which always kept it.
    """
    return [
        "UPDATE raw_leads SET meta_lead_id = r.meta_lead_id FROM rejected_leads r "
        "WHERE raw_leads.meta_lead_id IS NULL AND raw_leads.raw_key LIKE 'sha256:%' AND r.reason = 'bad_id' "
        "AND r.meta_lead_id IS NOT NULL AND r.distributor = raw_leads.distributor AND r.reject_key = raw_leads.raw_key",
    ]
