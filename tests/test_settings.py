"""Settings come from the environment; default secrets are refused outside development."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokerflow.kernel.errors import UnsafeSettings
from brokerflow.kernel.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for key in list(os.environ):
        if key.startswith("BROKERFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BROKERFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_defaults_are_local_and_refused_without_the_dev_flag(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnsafeSettings, match="BROKERFLOW_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("BROKERFLOW_DEV", "1")
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{clean_env / 'brokerflow.db'}"
    assert settings.s3_endpoint == ""  # no endpoint: the directory store keeps the documents
    assert settings.store_path == clean_env / "store"
    monkeypatch.delenv("BROKERFLOW_DEV")
    for name in ("SECRET_KEY", "ID_HASH_KEY", "AUDIT_KEY", "TOTP_KEY"):
        monkeypatch.setenv(f"BROKERFLOW_{name}", f"{name.lower()}-0123456789abcdefghijklmnop")
    assert load_settings().s3_endpoint == ""  # no S3 endpoint: its secret is not needed
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", "http://127.0.0.1:9000")
    with pytest.raises(UnsafeSettings, match="BROKERFLOW_S3_SECRET_KEY"):
        load_settings()
    assert settings.retention_years == 20 and settings.retention_mode == "GOVERNANCE"


def test_env_file_written_by_up_supplies_secrets_and_env_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brokerflow.app.stack import ensure_env_file

    path = ensure_env_file(clean_env)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    settings = load_settings()
    assert settings.s3_secret_key != "changethis" and len(settings.s3_secret_key) > 20
    monkeypatch.setenv("BROKERFLOW_S3_BUCKET", "other-bucket")
    monkeypatch.setenv("BROKERFLOW_RETENTION_MODE", "COMPLIANCE")
    settings = load_settings()
    assert settings.s3_bucket == "other-bucket" and settings.retention_mode == "COMPLIANCE"


def test_unsafe_settings_exit_2_from_the_cli(clean_env: Path, capsys) -> None:
    from brokerflow.app.cli import main

    assert main(["archive", "search", "--as", "x"]) == 2
    assert "BROKERFLOW_DEV" in capsys.readouterr().err
