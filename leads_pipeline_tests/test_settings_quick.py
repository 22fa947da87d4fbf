"""The warehouse's two settings read without pydantic-settings (``settings.resolved_warehouse_url``,
``settings.warehouse_busy_timeout_seconds``; issue #14, P6) are the values ``Settings`` reads: same variables in any
case, the environment over the dotenv file, the dotenv file named by ``LEADS_ENV_FILE``, and ``Settings``' own error
for a value it rejects. A divergence would make ``stats`` count another warehouse than ``sync`` fills."""

from __future__ import annotations

import pytest

from leads_pipeline import settings
from leads_pipeline.settings import Settings, get_settings


def _both(monkeypatch, env_file: str = "") -> tuple[tuple[str, float], tuple[str, float]]:
    monkeypatch.setenv("LEADS_ENV_FILE", env_file)
    get_settings.cache_clear()
    quick = (settings.resolved_warehouse_url(), settings.warehouse_busy_timeout_seconds())
    full = Settings(_env_file=env_file or None)
    return quick, (full.resolved_warehouse_url, full.warehouse_busy_timeout_seconds)


@pytest.mark.parametrize("env", [
    {},
    {"LEADS_DATA_DIR": "elsewhere/data"},
    {"leads_warehouse_url": "postgresql://u@127.0.0.1:5432/x", "LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS": "2.5"},
    {"LEADS_WAREHOUSE_URL": "", "Leads_Data_Dir": "/srv/leads"},
])
def test_the_quick_reads_are_the_settings_own(env, monkeypatch, tmp_path):
    monkeypatch.delenv("LEADS_DATA_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    quick, full = _both(monkeypatch)
    assert quick == full


def test_a_dotenv_file_is_read_as_settings_reads_it_and_the_environment_wins(monkeypatch, tmp_path):
    (tmp_path / "sandbox.env").write_text("# demo\nLEADS_DATA_DIR=from-dotenv\n"
                                          "export LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS='7'\nLEADS_APP_SECRET=x\n")
    monkeypatch.delenv("LEADS_DATA_DIR", raising=False)
    quick, full = _both(monkeypatch, str(tmp_path / "sandbox.env"))
    assert quick == full and quick[0].endswith("/from-dotenv/leads.duckdb") and quick[1] == 7.0
    monkeypatch.setenv("LEADS_DATA_DIR", str(tmp_path / "from-env"))
    quick, full = _both(monkeypatch, str(tmp_path / "sandbox.env"))
    assert quick == full == (f"duckdb:///{tmp_path / 'from-env' / 'leads.duckdb'}", 7.0)


def test_a_value_settings_rejects_fails_with_the_settings_error(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS", "ten minutes")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="warehouse_busy_timeout_seconds"):
        settings.warehouse_busy_timeout_seconds()
