"""The demo's sales history: staff working the sandbox's leads, each at the lead's own time.

The sandbox's leads arrive over the weeks before now (the simulator's world is anchored to the wall clock), so the
staff work that the demo seeds follows each lead: it is assigned minutes after it arrived, first contacted
minutes to hours later (most within a few hours, a tail over days), and converted or rejected days after that.
Whatever would happen after now has not happened yet: the latest leads are still waiting, as they would be. Leads
the score rates highly (a budget in the upper half, travel soon: what the person answered) convert more often, as
intent does for real clinics. The figures an analyst reads (time to first contact, contacts per day, conversion by
cohort and by grade) are therefore those of a believable sales team, not of one afternoon's bulk clicks.

The plan is a pure function of the leads and "now" (seeded per lead id: the same lead gets the same story on every
run); it is written through the library's bulk operations with their ``at=`` (one call per staff user and stage,
each action in the audit log, recorded now and dated when it happened).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Shares and delays of the seeded sales work (times are lognormal: median, spread as sigma of the log).
ASSIGNED_SHARE = 0.97  # the rest stay 'new' (the backlog nobody picked up)
CONTACTED_SHARE = 0.9  # of the assigned; most of the others are given up as not reachable days later
UNREACHABLE_MEDIAN_D, UNREACHABLE_SIGMA = 3.0, 0.5
ASSIGN_MEDIAN_MIN, ASSIGN_SIGMA = 6.0, 1.0
CONTACT_MEDIAN_H, CONTACT_SIGMA = 1.5, 1.4  # ~31 % within 1 h, ~97 % within a day, a tail over days
CONTACT_MAX = dt.timedelta(days=14)
CONVERT_MEDIAN_D, CONVERT_SIGMA = 4.0, 0.7
REJECT_MEDIAN_D, REJECT_SIGMA = 1.0, 1.0
#: The last week's leads (the speed-to-lead check's window) are all picked up and first contacted within this many
#: minutes: the team meets the default 60-minute target now, so a fresh demo's checks are green. Leads that arrive
#: later (under ``make dev`` nobody works them), or that were younger than this when the demo ran, show as overdue
#: once they wait past the target, as they should.
RECENT = dt.timedelta(days=7)
RECENT_CONTACT_MAX = dt.timedelta(minutes=20)


@dataclass
class StaffPlan:
    """What happens to which lead, and when: ``assign[user_index]``, ``contacted``, ``converted``, ``rejected``
    (after a contact), ``unreachable`` (rejected, never reached); each lead id → time. Only moments before ``now``."""

    assign: list[dict[str, dt.datetime]] = field(default_factory=list)
    contacted: dict[str, dt.datetime] = field(default_factory=dict)
    converted: dict[str, dt.datetime] = field(default_factory=dict)
    rejected: dict[str, dt.datetime] = field(default_factory=dict)
    unreachable: dict[str, dt.datetime] = field(default_factory=dict)  # rejected without a contact


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def plan(leads: Sequence[Mapping[str, Any]], owners: Sequence[set[str]], now: dt.datetime) -> StaffPlan:
    """The sales work on ``leads`` (rows with meta_lead_id, distributor, created_time and optionally ``score``, the
    lead's 0–100 score) by staff users who each work the distributors in ``owners[i]``, up to ``now``.

    Of the leads contacted, about 2 % of those scored 40 or less convert, rising to about 27 % at 90.
    """
    out = StaffPlan(assign=[{} for _ in owners])
    for lead in leads:
        lead_id = lead["meta_lead_id"]
        user = next((i for i, keys in enumerate(owners) if lead["distributor"] in keys), None)
        rng = random.Random(f"demo-staff:{lead_id}")
        created = _utc(lead["created_time"])
        recent = created >= now - RECENT
        if user is None or (rng.random() >= ASSIGNED_SHARE and not recent):
            continue
        assigned = created + dt.timedelta(minutes=_lognormal(rng, ASSIGN_MEDIAN_MIN, ASSIGN_SIGMA))
        if recent:
            assigned = min(assigned, created + RECENT_CONTACT_MAX / 2)
        if assigned > now:
            continue
        out.assign[user][lead_id] = assigned
        if rng.random() >= CONTACTED_SHARE and not recent:
            given_up = assigned + dt.timedelta(days=_lognormal(rng, UNREACHABLE_MEDIAN_D, UNREACHABLE_SIGMA))
            if rng.random() < 0.7 and given_up <= now:
                out.unreachable[lead_id] = given_up
            continue
        delay = min(dt.timedelta(hours=_lognormal(rng, CONTACT_MEDIAN_H, CONTACT_SIGMA)),
                    RECENT_CONTACT_MAX if recent else CONTACT_MAX)
        contacted = max(created + delay, assigned + dt.timedelta(minutes=1))
        if contacted > now:
            continue
        out.contacted[lead_id] = contacted
        p_convert = 0.02 + 0.25 * min(1.0, max(0.0, (float(lead.get("score") or 50) - 40) / 50))
        outcome = rng.random()
        if outcome < p_convert:
            when = contacted + dt.timedelta(days=_lognormal(rng, CONVERT_MEDIAN_D, CONVERT_SIGMA))
            if when <= now:
                out.converted[lead_id] = when
        elif outcome < p_convert + 0.3:
            when = contacted + dt.timedelta(days=_lognormal(rng, REJECT_MEDIAN_D, REJECT_SIGMA))
            if when <= now:
                out.rejected[lead_id] = when
    return out


def seed_staff_activity(wh, *, now: dt.datetime | None = None) -> StaffPlan | None:
    """Two staff users (each working some of the distributors: tenancy, each sees only theirs) and an admin; then
    the plan above, written through ``crm.bulk`` with ``at=``. Once: nothing when users exist already (a second
    ``make demo``), or when no lead was synced (every sync failed; the demo reports those runs).

    ``now``: up to when the staff worked. The demo gives the simulator's clock (the moment its world was anchored),
    so the same leads get the same story on every run, whatever the seconds the syncs took; default the wall clock.
    """
    from leads_pipeline.lib import crm

    if crm.list_users(wh, actor="system"):
        return None
    with wh.transaction(read_only=True) as conn:
        # Only leads as they arrived: one the parser stored as 'rejected' (no valid contact) is nobody's to call.
        rows = conn.query("SELECT meta_lead_id, distributor, created_time FROM leads WHERE status = 'new' "
                          "ORDER BY meta_lead_id")
    if not rows:
        return None
    score = _scores(wh)
    rows = [{**r, "score": score.get(r["meta_lead_id"])} for r in rows]
    keys = sorted(d.key for d in crm.visible_distributors(wh, actor="system"))
    staff = [crm.add_user(wh, "Ayşe Demir", "ayse@example.com", "staff", distributors=keys[0::2], actor="system"),
             crm.add_user(wh, "Can Yılmaz", "can@example.com", "staff", distributors=keys[1::2], actor="system")]
    admin = crm.add_user(wh, "Demo Admin", "admin@example.com", "superadmin", actor="system")["id"]
    wall = dt.datetime.now(dt.UTC)
    work = plan(rows, [set(u["distributors"]) for u in staff], min(now, wall) if now else wall)
    for user, mine in zip(staff, work.assign):
        if mine:
            crm.bulk(wh, "assign", ids=list(mine), user=user["id"], actor=admin, at=mine)
    for status, dated, note in (("contacted", work.contacted, None), ("converted", work.converted, None),
                                ("rejected", work.rejected, "not interested"),
                                ("rejected", work.unreachable, "not reachable")):
        if dated:
            crm.bulk(wh, "status", ids=list(dated), status=status, actor=admin, at=dated,
                     **({"note": note} if note else {}))
    return work


def _scores(wh) -> dict[str, int]:
    """Each lead's score from ``lead_scores`` (scored now when the table is still empty: the demo's first run seeds
    the staff work before its marts run), without the points for freshness: what the person answered, not how long
    ago the scoring ran, so that the same leads get the same story whenever the demo runs."""
    import json

    from leads_pipeline.lib.marts import scores

    with wh.transaction(read_only=True) as conn:
        scored = conn.scalar("SELECT count(*) FROM lead_scores")
    if not scored:
        scores.refresh_lead_scores(wh)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT meta_lead_id, score, reasons FROM lead_scores")
    out = {}
    for r in rows:
        reasons = json.loads(r["reasons"]) if isinstance(r["reasons"], str) else (r["reasons"] or [])
        fresh = sum(int(x.get("points") or 0) for x in reasons if str(x.get("rule", "")).startswith("fresh"))
        out[r["meta_lead_id"]] = int(r["score"]) - fresh
    return out
