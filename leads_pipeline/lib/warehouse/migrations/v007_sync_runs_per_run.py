"""Migration 7: sync runs owned by their run; lead attribution."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "sync runs owned by their run; lead attribution"


def statements(d: Dialect) -> list[str]:
    """Each ``sync_runs`` row describes one run and only that run; each lead names the run that stored it.

    - ``sync_runs.run_id``: the caller's run (a Dagster run id), so a run's row is found by the run, never by
      "the distributor's open row". ``status``: ``running`` → ``success`` | ``partial`` | ``failed``.
      ``landed``: raw rows this run added; ``recovered``: leads stored from raw rows a run that died had landed;
      ``held_elsewhere``: ``{distributor: n}`` lead ids this run read that another distributor already holds;
      ``failures``: the Pages/forms that failed (``{"page_id"|"form_id", "error", "what_to_do"}``).
    - ``leads.sync_id``: the run that inserted the row (NULL for rows stored before this migration), so that
      ``sync_runs.stored`` equals ``count(*) FROM leads WHERE sync_id = …`` whoever else processes meanwhile.

    Rows of runs that never finished before this migration (the old two-asset runs' "open" rows) are marked
    ``failed``: no process will finish them any more.
    """
    j = d.json
    return [
        "ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS run_id TEXT",
        "ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS status TEXT",
        "ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS landed INTEGER",
        "ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS recovered INTEGER",
        f"ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS held_elsewhere {j}",
        f"ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS failures {j}",
        "UPDATE sync_runs SET status = CASE WHEN success THEN 'success' ELSE 'failed' END, "
        "message = CASE WHEN finished_at IS NULL AND message IS NULL "
        "THEN 'Run did not finish (recorded before migration 7).' ELSE message END "
        "WHERE status IS NULL",
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS sync_id TEXT",
        *(["CREATE INDEX IF NOT EXISTS sync_runs_run_id ON sync_runs (run_id)",
           "CREATE INDEX IF NOT EXISTS leads_sync_id ON leads (sync_id)"] if d.name == "postgres" else []),
    ]
