"""How resources connect: secrets as `dg.EnvVar`, and one S3 connection from dagster-aws's
`S3Resource` for every S3 client (pyarrow's filesystem for data, boto3 via the resource)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.io.s3 import DEFAULT_REGION, S3Connection
from aiwf_assets.settings import PII_KEY_VAR, Settings, SettingsError, local_pii_key


def env_value(value: str | None) -> str | None:
    """A config value as the code sees it: an `EnvVar` read from the environment.

    Inside a run Dagster has already resolved `EnvVar` fields to their values; outside one
    (definitions being loaded, e.g. dbt's manifest build) the field still holds the EnvVar,
    whose own value is only the variable's name.
    """
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def secret_key(secret: str | None, key_file: str | None) -> bytes:
    """The deployment's secret key: `secret` (an EnvVar, required in prod), else locally the
    key generated once per AIWF_HOME in `key_file`."""
    value = env_value(secret)
    if value:
        return value.encode()
    if key_file:
        return local_pii_key(Path(key_file))
    raise SettingsError(
        f"{PII_KEY_VAR} is not set: in prod the key must come from the environment "
        "(a Kubernetes Secret); refusing to invent one"
    )


def s3_resource(settings: Settings) -> S3Resource:
    """dagster-aws's S3 resource from the settings: region, endpoint and retries. Credentials
    stay unset so that the AWS credential chain supplies them (nothing secret in config)."""
    return S3Resource(
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint,
        max_attempts=settings.s3_max_attempts,
    )


def s3_connection(s3: S3Resource | None) -> S3Connection:
    """The settings of `s3` for pyarrow's filesystem (and any other client of ours)."""
    if s3 is None:
        return S3Connection()
    return S3Connection(
        region=s3.region_name or DEFAULT_REGION,
        endpoint=s3.endpoint_url,
        max_attempts=s3.max_attempts,
        access_key=env_value(s3.aws_access_key_id),
        secret_key=env_value(s3.aws_secret_access_key),
        session_token=env_value(s3.aws_session_token),
    )


def s3_store(root: str, s3: S3Resource | None) -> ParquetStore:
    """`s3://bucket/prefix` as a store on the S3 resource's connection."""
    return ParquetStore.s3(root.removeprefix("s3://"), s3_connection(s3))
