"""One S3 connection description for every S3 client: pyarrow's filesystem for data, boto3
where an S3 API call is needed. The Dagster side builds it from dagster-aws's `S3Resource`
(`aiwf_assets.resources.s3_connection`), so region, endpoint, credentials and retries are
set in one place and no client falls back to its own defaults.

Credentials left unset use the AWS credential chain in both clients (environment, shared
profile, web identity / IRSA, instance metadata), so no key needs to be in config at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow.fs as pafs

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Connection:
    region: str = DEFAULT_REGION
    endpoint: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None for AWS
    max_attempts: int = 5  # the first try included, as in botocore and the AWS SDKs
    connect_timeout_s: float = 5.0
    # Linux ignores pyarrow's read timeout; it bounds reads on macOS/Windows only
    request_timeout_s: float = 60.0
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow's S3 filesystem on these settings."""
        kwargs: dict = {
            "region": self.region,
            "connect_timeout": self.connect_timeout_s,
            "request_timeout": self.request_timeout_s,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=self.max_attempts),
        }
        if self.endpoint:
            scheme, _, address = self.endpoint.rpartition("://")
            kwargs["endpoint_override"] = address.rstrip("/")
            kwargs["scheme"] = scheme or "https"
        if self.access_key and self.secret_key:
            kwargs.update(
                access_key=self.access_key,
                secret_key=self.secret_key,
                session_token=self.session_token,
            )
        return pafs.S3FileSystem(**kwargs)
