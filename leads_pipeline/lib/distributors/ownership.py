"""Form ownership (table ``form_owners``): every lead form belongs to at most one distributor at a time.

Two distributors can read one Facebook Page — a clinic group's Page with one form per clinic, or two tokens that see
the same Pages — and every lead, webhook or sync, must reach the one distributor whose form it came from. A Page
cannot decide that; only the form can. So ownership is recorded per form, with how it was claimed:

``explicit``    the distributor is configured with the form (``--form-id``). It owns exactly its configured forms,
                and no other distributor can claim them explicitly (:class:`FormClaimConflict` names the owner).
``discovered``  the distributor has no ``--form-id`` and its discovery saw the form on one of its Pages while
                nobody owned it. Discovery never takes a form another distributor owns; an explicit claim takes a
                discovered form over.

When a claim is released (a distributor removed, or its ``--form-id`` / ``--page-id`` changed) the form is offered
again to the discovering distributors that saw it, oldest first, so a form never stays unowned while someone could
own it by these rules.

Every function takes a :class:`~leads_pipeline.lib.warehouse.Conn` — it runs inside the caller's transaction and
does no network I/O — and the SQL is the same on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib.warehouse import Conn

from . import forms as form_records
from .errors import DistributorError, DistributorNotFound
from .validation import json_ids

__all__ = [
    "DISCOVERED",
    "EXPLICIT",
    "FormClaimConflict",
    "claim_discovered",
    "claim_explicit",
    "follow_configuration",
    "owned_forms",
    "release",
    "route",
]

EXPLICIT = "explicit"
DISCOVERED = "discovered"
_CHUNK = 1000  # ids per IN list: far below either backend's parameter limit


class FormClaimConflict(DistributorError):
    """Another distributor claims the form explicitly; the message names it and says how to resolve it."""

    def __init__(self, conflicts: list[tuple[str, str, str | None]]):
        self.conflicts = conflicts  # (form_id, owner key, owner name)
        self.form_id, self.owner = conflicts[0][0], conflicts[0][1]
        super().__init__("; ".join(
            f"form {form_id} is already claimed by distributor '{owner}'" + (f" ({name})" if name else "")
            + f": remove it there first (`leads-pipeline distributors update {owner} --form-id …` without it)"
            for form_id, owner, name in conflicts
        ))


@dataclass(frozen=True)
class _Config:
    key: str
    page_ids: tuple[str, ...]
    form_ids: tuple[str, ...]

    def discovers(self, page_id: str | None) -> bool:
        """Whether discovery may give this distributor a form on ``page_id``: it has no ``--form-id``, and the
        form is on one of its configured Pages (any Page its token sees when it has none)."""
        if self.form_ids:
            return False
        return not self.page_ids or page_id is None or page_id in self.page_ids


def _configs(conn: Conn) -> list[_Config]:
    """Every distributor's Pages and forms, oldest first (the order that settles ties)."""
    rows = conn.query("SELECT key, page_ids, form_ids FROM distributors ORDER BY created_at, key")
    return [_Config(r["key"], json_ids(r["page_ids"]), json_ids(r["form_ids"])) for r in rows]


def _config(conn: Conn, key: str) -> _Config:
    row = conn.query_one("SELECT key, page_ids, form_ids FROM distributors WHERE key = ?", [key])
    if row is None:
        raise DistributorNotFound(
            f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys."
        )
    return _Config(row["key"], json_ids(row["page_ids"]), json_ids(row["form_ids"]))


def _chunks(ids: list[str]) -> Iterable[tuple[list[str], str]]:
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        yield part, ", ".join("?" for _ in part)


def _id(value: Any) -> str | None:
    return None if value is None or str(value) == "" else str(value)


# ----------------------------------------------------------------------------------------------------------------------
# Claims
# ----------------------------------------------------------------------------------------------------------------------


def claim_explicit(conn: Conn, key: str, form_ids: Iterable[str], page_id: str | None = None) -> dict[str, str]:
    """Claim ``form_ids`` for ``key`` explicitly; returns ``{form_id: previous owner}`` of the forms taken over.

    A form nobody owns is claimed; one ``key`` discovered becomes explicit; one another distributor only discovered
    is taken over. If another distributor claims one of them explicitly, :class:`FormClaimConflict` names it and the
    caller's transaction must roll back (nothing is half-claimed). ``page_id`` is the form's Page when the caller
    knows it; otherwise the Page discovery recorded for the form, if any.
    """
    ids = sorted({i for i in (_id(f) for f in form_ids) if i is not None})
    if not ids:
        return {}
    taken: dict[str, str] = {}
    conflicts: list[tuple[str, str, str | None]] = []
    for part, marks in _chunks(ids):
        # Insert first: a concurrent claim of the same new form then waits on the primary key instead of racing.
        conn.execute(
            "INSERT INTO form_owners (form_id, distributor, page_id, claim, claimed_at) "
            "SELECT v.form_id, ?, COALESCE(CAST(? AS TEXT), (SELECT max(NULLIF(f.page_id, '')) FROM distributor_forms f "
            f"WHERE f.form_id = v.form_id)), '{EXPLICIT}', CURRENT_TIMESTAMP "
            f"FROM (VALUES {', '.join('(CAST(? AS TEXT))' for _ in part)}) AS v(form_id) ORDER BY v.form_id "
            "ON CONFLICT (form_id) DO NOTHING",
            [key, page_id, *part],
        )
        before = conn.query(
            f"SELECT form_id, distributor FROM form_owners WHERE form_id IN ({marks}) AND distributor <> ? "
            f"AND claim = '{DISCOVERED}' ORDER BY form_id",
            [*part, key],
        )
        # The WHERE is re-checked against a row another transaction changed meanwhile (PostgreSQL), so a form that
        # became someone's explicit claim in between is left alone and reported as a conflict below.
        conn.execute(
            f"UPDATE form_owners SET distributor = ?, claim = '{EXPLICIT}', "
            "page_id = COALESCE(CAST(? AS TEXT), page_id), claimed_at = CASE WHEN distributor = ? AND claim = "
            f"'{EXPLICIT}' THEN claimed_at ELSE CURRENT_TIMESTAMP END "
            f"WHERE form_id IN ({marks}) AND (distributor = ? OR claim = '{DISCOVERED}')",
            [key, page_id, key, *part, key],
        )
        rows = conn.query(
            f"SELECT o.form_id, o.distributor, d.name FROM form_owners o LEFT JOIN distributors d "
            f"ON d.key = o.distributor WHERE o.form_id IN ({marks}) ORDER BY o.form_id",
            part,
        )
        conflicts += [(r["form_id"], r["distributor"], r["name"]) for r in rows if r["distributor"] != key]
        taken.update({r["form_id"]: r["distributor"] for r in before})
    if conflicts:
        raise FormClaimConflict(conflicts)
    return taken


def claim_discovered(conn: Conn, key: str, forms: list[dict]) -> set[str]:
    """Record what discovery found for ``key`` and claim the forms nobody owns; returns the ids ``key`` owns among them.

    ``forms`` are discovery dicts (``id, name, page_id, status, locale, leads_count, expired_leads_count``). Every one
    is recorded in ``distributor_forms``; only a distributor without ``--form-id`` claims, only forms of its Pages,
    and never a form another distributor owns. A form's Page, as discovery saw it, is also noted on its claim.
    """
    found = form_records.record(conn, key, forms)
    if not found:
        return set()
    config = _config(conn, key)
    ids = sorted(found)
    conn.stage("discovered_forms", {"form_id": "TEXT", "page_id": "TEXT", "claimable": "BOOLEAN"},
               [(f, found[f], config.discovers(found[f])) for f in ids])
    conn.execute(
        "INSERT INTO form_owners (form_id, distributor, page_id, claim, claimed_at) "
        f"SELECT form_id, ?, page_id, '{DISCOVERED}', CURRENT_TIMESTAMP FROM discovered_forms WHERE claimable "
        "ORDER BY form_id ON CONFLICT (form_id) DO NOTHING",
        [key],
    )
    conn.execute(
        "UPDATE form_owners SET page_id = s.page_id FROM discovered_forms s WHERE form_owners.form_id = s.form_id "
        "AND s.page_id IS NOT NULL AND (form_owners.page_id IS NULL OR form_owners.page_id <> s.page_id)"
    )
    owned: set[str] = set()
    for part, marks in _chunks(ids):
        owned.update(r["form_id"] for r in conn.query(
            f"SELECT form_id FROM form_owners WHERE distributor = ? AND form_id IN ({marks})", [key, *part]))
    return owned


def _offer(conn: Conn, form_ids: Iterable[str]) -> None:
    """Give each unowned form of ``form_ids`` to the oldest distributor that discovered it and may own it."""
    ids = sorted(set(form_ids))
    if not ids:
        return
    seen: dict[str, dict[str, str | None]] = {}  # form → {distributor: page}
    for part, marks in _chunks(ids):
        for r in conn.query(
            f"SELECT f.form_id, f.distributor, f.page_id FROM distributor_forms f WHERE f.form_id IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM form_owners o WHERE o.form_id = f.form_id)",
            part,
        ):
            seen.setdefault(r["form_id"], {})[r["distributor"]] = _id(r["page_id"])
    if not seen:
        return
    configs = _configs(conn)
    rows = []
    for form_id in sorted(seen):
        for config in configs:
            if config.key in seen[form_id] and config.discovers(seen[form_id][config.key]):
                rows.append((form_id, config.key, seen[form_id][config.key]))
                break
    for form_id, owner, page in rows:
        conn.execute(
            "INSERT INTO form_owners (form_id, distributor, page_id, claim, claimed_at) "
            f"VALUES (?, ?, ?, '{DISCOVERED}', CURRENT_TIMESTAMP) ON CONFLICT (form_id) DO NOTHING",
            [form_id, owner, page],
        )


def release(conn: Conn, key: str, form_ids: Iterable[str] | None = None) -> list[str]:
    """Release ``key``'s claims (all of them, or only ``form_ids``); returns the released ids.

    On a distributor's removal (its leads stay under its key). Each released form goes to the oldest other
    discovering distributor that saw it, if any — a form is never left unowned while someone may own it.
    """
    if form_ids is None:
        released = [r["form_id"] for r in conn.query(
            "SELECT form_id FROM form_owners WHERE distributor = ? ORDER BY form_id", [key])]
        conn.execute("DELETE FROM form_owners WHERE distributor = ?", [key])
    else:
        released = []
        for part, marks in _chunks(sorted({i for i in (_id(f) for f in form_ids) if i is not None})):
            released += [r["form_id"] for r in conn.query(
                f"SELECT form_id FROM form_owners WHERE distributor = ? AND form_id IN ({marks}) ORDER BY form_id",
                [key, *part])]
            conn.execute(f"DELETE FROM form_owners WHERE distributor = ? AND form_id IN ({marks})", [key, *part])
    _offer(conn, released)
    return released


def follow_configuration(conn: Conn, key: str) -> dict[str, str]:
    """Make ``key``'s claims match its configuration (after ``distributors add/update``); returns the forms taken
    over from distributors that had only discovered them.

    With ``--form-id``: it owns exactly those forms (claims outside them are released). Without: its explicit claims
    are released, and so are discovered forms on Pages it no longer reads; it may then own, as discovered, what it
    had discovered itself (a form it stops claiming explicitly but still sees on its Pages stays its own).
    """
    config = _config(conn, key)
    claims = conn.query("SELECT form_id, page_id, claim FROM form_owners WHERE distributor = ? ORDER BY form_id", [key])
    if config.form_ids:
        drop = [r["form_id"] for r in claims if r["form_id"] not in config.form_ids]
    else:
        drop = [r["form_id"] for r in claims
                if r["claim"] == EXPLICIT or not config.discovers(_id(r["page_id"]))]
    release(conn, key, drop)
    if not config.form_ids:
        return {}
    return claim_explicit(conn, key, config.form_ids, config.page_ids[0] if len(config.page_ids) == 1 else None)


# ----------------------------------------------------------------------------------------------------------------------
# Reading and routing
# ----------------------------------------------------------------------------------------------------------------------


def owned_forms(conn: Conn, key: str) -> dict[str, str | None]:
    """``{form_id: page_id|None}`` of every form ``key`` owns (the Page is None until discovery has seen the form)."""
    rows = conn.query("SELECT form_id, page_id FROM form_owners WHERE distributor = ? ORDER BY form_id", [key])
    return {r["form_id"]: r["page_id"] for r in rows}


def route(conn: Conn, pairs: Iterable[tuple[str | None, str | None]]) -> dict[tuple, str | None]:
    """The distributor each ``(form_id, page_id)`` belongs to, or None when nobody (or not one alone) owns it.

    By the form's owner whenever there is a form id — never by Page then, since one Page can carry forms of several
    distributors: a form nobody owns yet stays unrouted until a claim or a discovery gives it an owner (guessing by
    Page would misroute a lead whose form another distributor claims later). Only without a form id (Meta leaves it
    out of some changes) by Page: the distributor configured with that Page, else the one owner of that Page's forms;
    None when several distributors fit.
    """
    keys = list(dict.fromkeys(pairs))
    wanted_forms = sorted({f for f in (_id(k[0]) for k in keys) if f is not None})
    wanted_pages = sorted({_id(k[1]) for k in keys if _id(k[0]) is None and _id(k[1]) is not None})
    by_form: dict[str, str] = {}
    for part, marks in _chunks(wanted_forms):
        for r in conn.query(
            f"SELECT o.form_id, o.distributor FROM form_owners o JOIN distributors d ON d.key = o.distributor "
            f"WHERE o.form_id IN ({marks})",
            part,
        ):
            by_form[r["form_id"]] = r["distributor"]
    by_page: dict[str, str | None] = {}
    if wanted_pages:
        configured: dict[str, list[str]] = {}
        for config in _configs(conn):
            for page in config.page_ids:
                configured.setdefault(page, []).append(config.key)
        owners: dict[str, set[str]] = {}
        for part, marks in _chunks(wanted_pages):
            for r in conn.query(
                f"SELECT DISTINCT o.page_id, o.distributor FROM form_owners o JOIN distributors d "
                f"ON d.key = o.distributor WHERE o.page_id IN ({marks})",
                part,
            ):
                owners.setdefault(r["page_id"], set()).add(r["distributor"])
        for page in wanted_pages:
            candidates = configured.get(page) or sorted(owners.get(page, ()))
            by_page[page] = candidates[0] if len(candidates) == 1 else None
    out: dict[tuple, str | None] = {}
    for pair in keys:
        form_id, page_id = _id(pair[0]), _id(pair[1])
        out[pair] = by_form.get(form_id) if form_id is not None else by_page.get(page_id) if page_id else None
    return out

