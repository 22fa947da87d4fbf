"""Migration 6: form ownership (one distributor per form)."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "form ownership (one distributor per form)"


def statements(d: Dialect) -> list[str]:
    """``form_owners`` (one owner per lead form) backfilled from the configuration, and Meta's expired-lead count.

    Until now a webhook was routed by Page, and discovery recorded every form a token saw, so the distributor that
    merely saw another's form could win its leads. The backfill keeps what the operators configured and drops what
    discovery took by accident: every form in ``distributors.form_ids`` becomes an ``explicit`` claim (the oldest
    distributor wins if two list it), then every recorded form still unowned becomes ``discovered`` by the oldest
    distributor that recorded it *and may discover it* — one without ``--form-id``, reading that Page (or every Page).
    A distributor with ``--form-id`` owns exactly those forms, so what its discovery recorded is not its own.
    ``distributor_forms.expired_leads_count`` keeps Meta's count of leads it no longer serves (about 90 days old).
    """
    if d.name == "duckdb":
        explicit_ids = ("SELECT key, created_at, unnest(from_json(form_ids, '[\"VARCHAR\"]')) AS form_id "
                        "FROM distributors")
        no_forms = "json_array_length(d.form_ids) = 0"
        reads_page = ("(json_array_length(d.page_ids) = 0 OR "
                      "list_contains(from_json(d.page_ids, '[\"VARCHAR\"]'), f.page_id))")
    else:
        explicit_ids = ("SELECT key, created_at, jsonb_array_elements_text(form_ids) AS form_id FROM distributors")
        no_forms = "jsonb_array_length(d.form_ids) = 0"
        reads_page = "(jsonb_array_length(d.page_ids) = 0 OR d.page_ids @> jsonb_build_array(f.page_id))"
    return [
        """CREATE TABLE IF NOT EXISTS form_owners (
            form_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            page_id TEXT,
            claim TEXT NOT NULL,
            claimed_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
        "ALTER TABLE distributor_forms ADD COLUMN IF NOT EXISTS expired_leads_count BIGINT",
        f"""INSERT INTO form_owners (form_id, distributor, page_id, claim, claimed_at)
            SELECT c.form_id, c.key,
                   (SELECT max(NULLIF(f.page_id, '')) FROM distributor_forms f WHERE f.form_id = c.form_id),
                   'explicit', CURRENT_TIMESTAMP
            FROM (SELECT e.key, e.form_id,
                         row_number() OVER (PARTITION BY e.form_id ORDER BY e.created_at, e.key) AS n
                  FROM ({explicit_ids}) e) c
            WHERE c.n = 1
            ORDER BY c.form_id
            ON CONFLICT (form_id) DO NOTHING""",
        f"""INSERT INTO form_owners (form_id, distributor, page_id, claim, claimed_at)
            SELECT c.form_id, c.distributor, c.page_id, 'discovered', CURRENT_TIMESTAMP
            FROM (SELECT f.form_id, f.distributor, NULLIF(f.page_id, '') AS page_id,
                         row_number() OVER (PARTITION BY f.form_id ORDER BY d.created_at, d.key) AS n
                  FROM distributor_forms f JOIN distributors d ON d.key = f.distributor
                  WHERE {no_forms} AND {reads_page}) c
            WHERE c.n = 1 AND NOT EXISTS (SELECT 1 FROM form_owners o WHERE o.form_id = c.form_id)
            ORDER BY c.form_id
            ON CONFLICT (form_id) DO NOTHING""",
        "CREATE INDEX IF NOT EXISTS form_owners_distributor ON form_owners (distributor)"
        if d.name == "postgres" else "SELECT 1",
    ]
