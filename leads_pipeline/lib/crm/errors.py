"""Errors of lead operations. Every message is meant to be shown to the person who asked, as is."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leads_pipeline.lib.distributors.errors import DistributorNotFound


def _id_list(ids: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … and {len(ids) - limit} more" if len(ids) > limit else "")


class CrmError(Exception):
    """Base class: a lead operation was refused. Nothing was changed."""


class InvalidInput(CrmError, ValueError):
    """An argument is not acceptable (unknown status or kind, empty note, bad date…)."""


class LeadNotFound(CrmError, LookupError):
    """No lead with that Meta lead id (or several, for a bulk request). ``deleted`` names those erased earlier."""

    def __init__(self, *lead_ids: str, deleted: Iterable[str] = (), of: int | None = None):
        self.ids = [str(i) for i in lead_ids]
        self.lead_id = self.ids[0] if self.ids else None
        self.deleted = [str(i) for i in deleted]
        gone = f" ({_id_list(self.deleted)} deleted earlier on a privacy request)" if self.deleted else ""
        if of is not None:  # part of a bulk request
            msg = f"{len(self.ids)} of the {of} leads not found: {_id_list(self.ids)}{gone}. Nothing was changed."
        elif self.deleted:
            msg = f"Lead {self.lead_id} was deleted on a privacy request; it cannot be changed or shown."
        else:
            msg = f"Lead {self.lead_id} not found: check the Meta lead id (`leads-pipeline lead list`)."
        super().__init__(msg)


class InvalidTransition(CrmError, ValueError):
    """The status change is not in the transition table (``TRANSITIONS``)."""

    def __init__(self, from_status: str, to_status: str, allowed: Iterable[str], lead_id: str | None = None,
                 reason: str | None = None):
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = tuple(allowed)
        self.lead_id = lead_id
        who = f"lead {lead_id}" if lead_id else "a lead"
        if reason:
            msg = f"Cannot move {who} from '{from_status}' to '{to_status}': {reason}."
        elif from_status == to_status:
            msg = f"Lead {lead_id} is already '{to_status}'." if lead_id else f"The lead is already '{to_status}'."
        elif not self.allowed:
            msg = f"Cannot move {who} from '{from_status}' to '{to_status}': '{from_status}' is final."
        else:
            msg = (f"Cannot move {who} from '{from_status}' to '{to_status}'; "
                   f"from '{from_status}' it can go to: {', '.join(self.allowed)}.")
        super().__init__(msg)


class BulkInvalidTransition(InvalidTransition):
    """Some leads of a bulk status request cannot make the move.

    ``groups`` lists ``(from_status, why, ids)``; ``ids`` is every offending lead id; ``allowed``: where the first
    group's status may go (the caller knows the rules; errors know none).
    """

    def __init__(self, to_status: str, groups: Sequence[tuple[str, str, Sequence[str]]], allowed: Iterable[str] = ()):
        self.groups = [(f, why, list(ids)) for f, why, ids in groups]
        self.ids = [i for _, _, ids in self.groups for i in ids]
        self.from_status = self.groups[0][0]
        self.to_status = to_status
        self.allowed = tuple(allowed)
        self.lead_id = None
        parts = [f"{_id_list(ids)} ({why})" for _, why, ids in self.groups]
        CrmError.__init__(
            self,
            f"Cannot move {len(self.ids)} of the selected leads to '{to_status}': {'; '.join(parts)}. "
            "Nothing was changed.",
        )


class UnknownUser(CrmError, LookupError):
    """No such user (or the user is deactivated, where an active one is needed)."""


class UserExists(CrmError, ValueError):
    """A user with that email already exists."""


class PermissionDenied(CrmError, PermissionError):
    """The acting user's role does not allow the operation (see ``PERMISSIONS``)."""


class DistributorNotVisible(CrmError, DistributorNotFound):
    """A distributor outside the caller's scope: answered exactly like one that does not exist."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys.")
