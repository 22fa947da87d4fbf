"""What the simulated world looks like: a ``Scenario`` (a dataclass, also loadable from a JSON file)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leads_pipeline.simulator.data import PAGE_REGIONS_DEFAULT

DEFAULT_START_TIME = 1780272000  # 2026-06-01T00:00:00+0000: a fixed clock, for tests that compare exact worlds
VERSION_RE = re.compile(r"v\d+\.\d+")


@dataclass
class Scenario:
    """Parameters of a simulated Meta world. Same scenario (same seed) → byte-identical world.

    ``leads_per_form`` is an int or a list (one count per form, in page-then-form order; cycled).
    ``extra_leads`` leads arrive after ``start_time`` at ``arrival_rate`` leads per simulated minute (exponential
    gaps, at least 1 s apart); ``None`` means an endless timeline (generated lazily; used in real-time mode).
    ``regions`` gives each page's default phone region (cycled); the default mix starts with ``TR``.

    The clock: ``start_time`` (unix seconds) is the world's "now" when it is built; the initial leads lie in the
    ``history_days`` before it. The default is a fixed moment, so that the same scenario is the same world, to the
    second, whenever it is built (tests, benchmarks). ``start_time=None`` anchors the world to the wall clock when it
    is built: its history is the last ``history_days`` up to that moment, and in real-time mode the clock then
    follows wall time, so leads arrive dated as they arrive (the sandbox of ``make demo`` / ``make dev`` and
    ``leads-pipeline simulator serve``). Ids, names and answers are the same either way: only the times move.
    """

    seed: int = 1
    pages: int = 3
    forms_per_page: int = 2
    leads_per_form: int | list[int] = 400
    extra_leads: int | None = 200
    arrival_rate: float = 6.0
    malformed_rate: float = 0.01
    organic_rate: float = 0.1
    same_person_rate: float = 0.03
    invalid_contact_rate: float = 0.04
    ig_rate: float = 0.4
    regions: list[str] | None = None
    ads_per_form: int = 2
    page_limit_max: int = 100
    default_limit: int = 25
    api_version: str = "v25.0"
    accepted_versions: list[str] | None = None
    allow_unversioned: bool = True
    require_appsecret_proof: bool = False
    start_time: int | None = DEFAULT_START_TIME
    history_days: float = 30.0
    usage_calls_per_hour: int = 4800
    malformed_kinds: list[str] = field(default_factory=lambda: list(MALFORMED_KINDS))

    def __post_init__(self) -> None:
        if self.pages < 1 or self.forms_per_page < 1:
            raise ValueError("a scenario needs at least one page and one form per page")
        counts = self.leads_per_form if isinstance(self.leads_per_form, list) else [self.leads_per_form]
        if not counts or any(int(c) < 0 for c in counts):
            raise ValueError("leads_per_form must be >= 0")
        for name in ("malformed_rate", "organic_rate", "same_person_rate", "invalid_contact_rate", "ig_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.page_limit_max < 1 or self.default_limit < 1:
            raise ValueError("limits must be >= 1")
        if not VERSION_RE.fullmatch(self.api_version):
            raise ValueError("api_version must look like v25.0")
        if self.extra_leads is not None and self.extra_leads < 0:
            raise ValueError("extra_leads must be >= 0 or None")
        if self.history_days <= 0:
            raise ValueError("history_days must be > 0")
        if self.arrival_rate <= 0:
            raise ValueError("arrival_rate must be > 0 (leads per minute)")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown:
            raise ValueError(f"unknown malformed kinds: {sorted(unknown)}")

    # ---------------------------------------------------------------------------------------------------------------

    @property
    def anchored_to_now(self) -> bool:
        """Whether the world's clock is the wall clock (``start_time=None``) rather than a fixed moment."""
        return self.start_time is None

    def leads_for_form(self, global_form_index: int) -> int:
        counts = self.leads_per_form if isinstance(self.leads_per_form, list) else [self.leads_per_form]
        return int(counts[global_form_index % len(counts)])

    def region_for_page(self, page_index: int) -> str:
        regions = self.regions or list(PAGE_REGIONS_DEFAULT)
        return regions[page_index % len(regions)].upper()

    def version_accepted(self, version: str | None) -> bool:
        if version is None:
            return self.allow_unversioned
        if not VERSION_RE.fullmatch(version):
            return False
        return self.accepted_versions is None or version in self.accepted_versions

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, source: str | Path) -> Scenario:
        """From a JSON file path, or a JSON text."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


MALFORMED_KINDS = (
    "missing_id",        # no "id" (or null / "")
    "non_digit_id",      # "id": "lead_8842..."
    "bad_created_time",  # "2026-06-01 12:34:56", unix string, no offset...
    "field_data_null",   # "field_data": null (or a non-list / an entry without a values list)
    "all_values_empty",  # every answer is ""
    "invalid_email_no_phone",
)
