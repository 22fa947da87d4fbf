"""Migration 14: distributor health (back-off of failing tokens), speed-to-lead targets, notice kinds, score ranks."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "distributor health, speed-to-lead targets, notice kinds, score ranks"


def statements(d: Dialect) -> list[str]:
    """What operators need to see and act on (issue 15):

    - ``distributor_health``: one row per distributor whose token or permissions failed. Scheduled syncs of a
      distributor with a broken token failed every few minutes forever; the row holds the back-off (consecutive
      failures, when the schedule tries again, when it paused) and when its one failure notice was queued. A
      successful sync or connection test, or a new token (``token_fingerprint`` differs), ends the episode.
    - ``distributors.speed_to_lead_minutes``: the target time from a lead's arrival at Meta to its first contact
      (default 60; NULL = no target), for the console's overdue marks, the speed-to-lead check and the daily digest.
    - ``notification_outbox.kind``: the outbox also carries operator notices (``sync_failure``,
      ``speed_to_lead_digest``) next to new-lead emails; a digest of new leads must never swallow one of them.
      Existing rows are new-lead emails.
    - ``lead_scores.score_rank``: the lead's place in its distributor (score, then the newest first), so the
      "best leads to call" list has one order instead of thousands of ties.
    - PostgreSQL: the health summary reads each distributor's newest runs (``sync_runs`` by distributor and start),
      and the overdue queries read open, never-contacted leads by distributor and time.
    """
    stmts = [
        "ALTER TABLE distributors ADD COLUMN speed_to_lead_minutes INTEGER DEFAULT 60",
        """CREATE TABLE IF NOT EXISTS distributor_health (
            distributor TEXT PRIMARY KEY,
            failures INTEGER NOT NULL DEFAULT 0,
            failing_since TIMESTAMPTZ,
            last_failure_at TIMESTAMPTZ,
            last_error TEXT,
            retry_at TIMESTAMPTZ,
            paused_at TIMESTAMPTZ,
            token_fingerprint TEXT,
            notified_at TIMESTAMPTZ,
            cleared_at TIMESTAMPTZ,
            cleared_by TEXT
        )""",
        "ALTER TABLE notification_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'new_lead'",
        "ALTER TABLE lead_scores ADD COLUMN score_rank BIGINT",
    ]
    if d.name == "postgres":
        stmts += [
            "CREATE INDEX IF NOT EXISTS sync_runs_distributor_started ON sync_runs (distributor, started_at)",
            ("CREATE INDEX IF NOT EXISTS leads_open_uncontacted ON leads (distributor, created_time) "
             "WHERE first_contacted_at IS NULL AND status IN ('new', 'assigned')"),
        ]
    return stmts
