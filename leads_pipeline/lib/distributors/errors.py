"""The errors of distributor operations, in their own module so the registry and the form ownership rules (which the
registry calls) can both raise them without importing each other."""

from __future__ import annotations

__all__ = ["DistributorError", "DistributorNotFound", "DuplicateDistributor"]


class DistributorError(ValueError):
    """A distributor operation that cannot be done as asked; the message says what to change."""


class DistributorNotFound(DistributorError):
    """No distributor has that key."""


class DuplicateDistributor(DistributorError):
    """A distributor with that name (or key) exists already."""
