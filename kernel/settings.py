"""One settings object, read from ``BROKERFLOW_*`` environment variables.

Local defaults point at the stack ``brokerflow up`` serves (SQLite file and data under
``BROKERFLOW_HOME``, default ``~/.brokerflow``).  ``brokerflow up`` writes generated secrets
to ``$BROKERFLOW_HOME/brokerflow.env``, which is read as a fallback for the environment.
Default secrets are refused unless ``BROKERFLOW_DEV=1``, and so are short or repetitive
ones.  Two keys, so that either can be rotated alone: ``BROKERFLOW_SECRET_KEY`` signs the
archive page's cookies (rotating it logs everyone out); ``BROKERFLOW_ID_HASH_KEY`` keys the
hash of client ID numbers (rotating it would make known clients look new: keep it);
``BROKERFLOW_AUDIT_KEY`` keys the audit chain (losing it makes the chain unverifiable);
``BROKERFLOW_TOTP_KEY`` encrypts the one-time-code seeds (losing it means enrolling again).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from brokerflow.kernel.errors import UnsafeSettings

DEFAULT_SECRET = "changethis"
ENV_FILE_NAME = "brokerflow.env"
MIN_KEY_LENGTH = 32  # the cookie key and the ID-number key (≥ 190 bits from token_urlsafe)
MIN_S3_SECRET_LENGTH = 8  # what MinIO itself requires
MIN_DISTINCT_CHARACTERS = 8


def brokerflow_home() -> Path:
    """The directory holding the local database, stack state and generated env file."""
    return Path(os.environ.get("BROKERFLOW_HOME", Path.home() / ".brokerflow")).expanduser()


class Settings(BaseSettings):
    """Connection settings and policy knobs for one brokerflow installation."""

    model_config = SettingsConfigDict(env_prefix="BROKERFLOW_", extra="ignore")

    home: Path = Path("~/.brokerflow")
    database_url: str = ""
    s3_endpoint: str = ""  # none: the durable directory store under store_dir (SPEC §7)
    s3_access_key: str = "brokerflow"
    s3_secret_key: str = DEFAULT_SECRET
    s3_bucket: str = "brokerflow-archive"
    s3_region: str = "us-east-1"
    s3_retries: int = 3  # quick reconnects (never a PUT resend) below the outage budget
    s3_timeout_seconds: float = 10.0
    s3_retry_seconds: float = 60.0  # one store operation waits out an outage this long
    archive_retries: int = 4  # a flow's archive step is run again this often (Prefect retries)
    archive_retry_delay_seconds: float = 15.0  # before the first re-run; doubles each time
    run_lease_seconds: float = 60.0  # a flow run's process unheard of this long is gone
    max_run_recoveries: int = 5  # a run handed back this often in an hour needs an operator
    reservation_lease_seconds: int = 600  # a put not finished by then counts as interrupted
    reminder_after_hours: int = 72  # 催办 after 3 days waiting on one step
    retention_years: int = 20
    # COMPLIANCE in production; GOVERNANCE (liftable with the bypass permission) is refused
    # outside development mode.  Empty: COMPLIANCE, or GOVERNANCE in development mode.
    retention_mode: Literal["GOVERNANCE", "COMPLIANCE", ""] = ""
    s3_inputs_bucket: str = ""  # CRM exports and other inputs; default "<s3_bucket>-inputs"
    inputs_retention_years: int = 20  # the inputs' own retention (kept apart from records)
    signing_dir: Path | None = None  # signing keys; default $BROKERFLOW_HOME/archive-keys
    signing_key_passphrase: str = ""  # encrypts the archive's private signing key
    secret_key: str = DEFAULT_SECRET
    id_hash_key: str = DEFAULT_SECRET
    audit_key: str = DEFAULT_SECRET  # keys the audit chain; kept outside the database
    totp_key: str = DEFAULT_SECRET  # encrypts the one-time-code seeds; outside the database
    timezone: str = "Asia/Shanghai"
    web_url: str = "http://127.0.0.1:8400"  # the archive page, as managers reach it (links)
    store_dir: Path | None = None  # the directory store; default $BROKERFLOW_HOME/store
    templates_dir: Path | None = None
    dev: bool = False

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'brokerflow.db'}"
        if self.retention_years < 1 or self.inputs_retention_years < 1:
            raise UnsafeSettings("BROKERFLOW_RETENTION_YEARS and BROKERFLOW_INPUTS_RETENTION_YEARS "
                                 "must be at least 1")
        if not self.retention_mode:
            self.retention_mode = "GOVERNANCE" if self.dev else "COMPLIANCE"
        elif self.retention_mode == "GOVERNANCE" and not self.dev:
            raise UnsafeSettings("BROKERFLOW_RETENTION_MODE=GOVERNANCE lets whoever holds the "
                                 "bypass permission lift a record's retention: production "
                                 "keeps records in COMPLIANCE mode (GOVERNANCE only with "
                                 "BROKERFLOW_DEV=1)")
        if not self.s3_inputs_bucket:
            self.s3_inputs_bucket = f"{self.s3_bucket}-inputs"
        if self.s3_inputs_bucket == self.s3_bucket:
            raise UnsafeSettings("BROKERFLOW_S3_INPUTS_BUCKET must differ from "
                                 "BROKERFLOW_S3_BUCKET: inputs are kept apart from the records")
        return self

    def check_secrets(self) -> None:
        """Refuse default, short or repetitive secrets (``UnsafeSettings``, exit 2); the
        development flag allows the defaults, nothing else."""
        problems = []
        for name, value, minimum in (
            *([("BROKERFLOW_S3_SECRET_KEY", self.s3_secret_key, MIN_S3_SECRET_LENGTH)]
              if self.s3_endpoint else []),
            ("BROKERFLOW_SECRET_KEY", self.secret_key, MIN_KEY_LENGTH),
            ("BROKERFLOW_ID_HASH_KEY", self.id_hash_key, MIN_KEY_LENGTH),
            ("BROKERFLOW_AUDIT_KEY", self.audit_key, MIN_KEY_LENGTH),
            ("BROKERFLOW_TOTP_KEY", self.totp_key, MIN_KEY_LENGTH),
            *([("BROKERFLOW_SIGNING_KEY_PASSPHRASE", self.signing_key_passphrase,
                MIN_KEY_LENGTH)] if self.signing_key_passphrase else []),
        ):
            if value == DEFAULT_SECRET:
                if not self.dev:
                    problems.append(f"{name} still has the default value {DEFAULT_SECRET!r}")
            elif len(value) < minimum or len(set(value)) < MIN_DISTINCT_CHARACTERS:
                problems.append(f"{name} is too weak: it needs at least {minimum} characters, "
                                f"{MIN_DISTINCT_CHARACTERS} of them different")
        if problems:
            raise UnsafeSettings(
                "; ".join(problems) + "; set real secrets, run 'brokerflow up' (it generates "
                "them), or set BROKERFLOW_DEV=1 for development")

    @property
    def store_path(self) -> Path:
        """Root of the directory store (used when no S3 endpoint is configured)."""
        return (self.store_dir or self.home / "store").expanduser()

    @property
    def s3_secure(self) -> bool:
        return self.s3_endpoint.startswith("https://")

    @property
    def s3_host(self) -> str:
        """host:port of the S3 endpoint, as the minio client wants it."""
        return self.s3_endpoint.split("://", 1)[-1].rstrip("/")


def load_settings(*, check_secrets: bool = True) -> Settings:
    """Settings from the environment, then ``$BROKERFLOW_HOME/brokerflow.env``."""
    home = brokerflow_home()
    env_file = home / ENV_FILE_NAME
    settings = Settings(
        _env_file=env_file if env_file.exists() else None,  # type: ignore[call-arg]
        home=home,
    )
    if check_secrets:
        settings.check_secrets()
    return settings
