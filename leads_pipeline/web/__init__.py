"""The HTTP service: Meta webhook receiver, JSON API and staff console (Starlette)."""
