"""leads_pipeline: Facebook / Instagram Lead Ads into a warehouse, orchestrated by Dagster.

Layers (dependencies point down only): ``cli`` and ``web`` and ``defs`` (Dagster) call ``lib`` (plain Python).
"""

__version__ = "0.1.0"
