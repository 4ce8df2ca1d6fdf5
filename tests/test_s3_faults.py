"""S3 configured once (dagster-aws's `S3Resource`) for every client, and S3 misbehaving.

All traffic goes through a fault-injecting proxy on loopback (`tests/s3_fault_proxy.py`) in
front of moto's S3 server, so the tests see every request a client sends: which region it
signs for, and what happens when S3 answers 500/503, answers slowly or drops the connection.
Retries must succeed, and an object is only ever visible whole (old bytes or new bytes).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
from dagster_aws.s3 import S3Resource
from polars.testing import assert_frame_equal

from aiwf_assets.connections import s3_resource
from aiwf_assets.resources import (
    ExportsResource,
    LandingResource,
    ModelStoreResource,
    StorageResource,
    build_resources,
)
from aiwf_assets.settings import Settings, _read_env
from tests.s3_fault_proxy import Delay, DropRequest, DropResponse, FaultPlan, Status, fault_proxy

pytest_plugins = ["tests.s3_server"]  # the s3_server fixture

REGION = "eu-central-1"  # not boto3's, pyarrow's or dagster-aws's default


@pytest.fixture
def proxied(
    s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, FaultPlan, str]]:
    """(proxy URL, its fault plan, a fresh bucket created in REGION)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    bucket = f"aiwf-test-{uuid.uuid4().hex[:12]}"
    direct(s3_server).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    with fault_proxy(s3_server) as (url, plan):
        yield url, plan, bucket


def direct(s3_server: str):
    """boto3 straight to moto, around the proxy: what a reader sees at any moment."""
    return boto3.client("s3", endpoint_url=s3_server, region_name=REGION)


def frame(n: int, seed: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"order_id": [f"o-{seed}-{i}" for i in range(n)], "amount": [i * 1.5 for i in range(n)]}
    )


def storage(url: str, bucket: str, max_attempts: int = 5) -> StorageResource:
    s3 = S3Resource(region_name=REGION, endpoint_url=url, max_attempts=max_attempts)
    return StorageResource(root=f"s3://{bucket}/aiwf/storage", s3=s3)


# one configuration for every client ------------------------------------------------------------
def test_region_and_retries_come_from_the_environment(tmp_path: Path) -> None:
    base = {"AIWF_ENV": "prod", "AIWF_HOME": str(tmp_path), "AIWF_S3_BUCKET": "b"}
    assert _read_env(base).s3_region == "us-east-1"
    assert _read_env({**base, "AWS_DEFAULT_REGION": "eu-west-2"}).s3_region == "eu-west-2"
    assert (
        _read_env({**base, "AWS_DEFAULT_REGION": "eu-west-2", "AWS_REGION": REGION}).s3_region
        == REGION
    )
    overrides = {"AIWF_S3_REGION": REGION, "AIWF_S3_MAX_ATTEMPTS": "9"}
    settings = _read_env(
        {**base, **overrides, "AWS_REGION": "eu-west-2", "AIWF_S3_ENDPOINT": "http://h:1"}
    )
    resource = s3_resource(settings)
    assert (resource.region_name, resource.max_attempts, resource.endpoint_url) == (
        REGION,
        9,
        "http://h:1",
    )
    assert resource.aws_access_key_id is None  # credentials: the AWS chain, not config


def test_every_s3_client_signs_for_the_configured_region(
    proxied: tuple[str, FaultPlan, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, plan, bucket = proxied
    monkeypatch.setenv("AIWF_PII_KEY", "k" * 64)  # the model store signs its cards with it
    settings = Settings(
        env="prod", home=tmp_path, s3_bucket=bucket, s3_endpoint=url, s3_region=REGION
    )
    resources = build_resources(settings)
    stored = resources["storage"]
    landing = resources["landing"]
    models = resources["model_store"]
    exports = resources["exports"]
    assert isinstance(stored, StorageResource) and isinstance(landing, LandingResource)
    assert isinstance(models, ModelStoreResource) and isinstance(exports, ExportsResource)

    orders = frame(20)
    stored.store().write("orders", orders, partition="2026-01-01")
    assert_frame_equal(stored.store().read("orders", partition="2026-01-01"), orders)
    assert exports.write("crm_export", orders) == [
        f"s3://{bucket}/aiwf/exports/crm_export.csv",
        f"s3://{bucket}/aiwf/exports/crm_export.parquet",
    ]
    models.store().record("churn", "0" * 64, "reject", "test")
    assert models.store().registry("churn").history[0]["reason"] == "test"
    boto = s3_resource(settings).get_client()
    boto.put_object(Bucket=bucket, Key="aiwf/landing/web_orders/2026-01-01.csv", Body=b"a\n1\n")
    assert list(landing.list_files("web_orders")) == ["2026-01-01.csv"]
    assert landing.read_bytes("web_orders/2026-01-01.csv") == b"a\n1\n"

    methods = {seen.method for seen in plan.seen}
    assert {"PUT", "GET", "HEAD"} <= methods
    assert {seen.region for seen in plan.seen} == {REGION}, plan.seen


# faults ------------------------------------------------------------------------------------------
def test_5xx_answers_are_retried(proxied: tuple[str, FaultPlan, str], s3_server: str) -> None:
    url, plan, bucket = proxied
    store = storage(url, bucket).store()
    orders = frame(50)
    plan.inject("PUT", Status(503), Status(500))
    plan.inject("GET", Status(500), Status(503))

    store.write("orders", orders)
    assert_frame_equal(store.read("orders"), orders)

    assert plan.faults_fired() == [Status(503), Status(500), Status(500), Status(503)]
    boto = S3Resource(region_name=REGION, endpoint_url=url, max_attempts=5).get_client()
    plan.inject("GET", Status(503), Status(500))
    body = boto.get_object(Bucket=bucket, Key="aiwf/storage/orders.parquet")["Body"].read()
    assert_frame_equal(pl.read_parquet(io.BytesIO(body)), orders)
    assert len(plan.faults_fired()) == 6


def test_a_store_gives_up_after_max_attempts(proxied: tuple[str, FaultPlan, str]) -> None:
    url, plan, bucket = proxied
    store = storage(url, bucket, max_attempts=2).store()
    plan.inject("PUT", Status(503), Status(503))
    with pytest.raises(OSError, match="SLOW_DOWN"):
        store.write("orders", frame(5))
    assert not store.exists("orders")


def test_slow_responses_still_succeed(proxied: tuple[str, FaultPlan, str]) -> None:
    url, plan, bucket = proxied
    store = storage(url, bucket).store()
    orders = frame(30)
    plan.inject("PUT", Delay(1.5))
    plan.inject("GET", Delay(1.5))
    plan.inject("HEAD", Delay(1.5))

    store.write("orders", orders)
    assert_frame_equal(store.read("orders"), orders)
    assert plan.faults_fired() == [Delay(1.5)] * 3


def test_dropped_connections_never_leave_a_partial_object(
    proxied: tuple[str, FaultPlan, str], s3_server: str
) -> None:
    url, plan, bucket = proxied
    store = storage(url, bucket).store()
    key = "aiwf/storage/orders.parquet"
    old, new = frame(1000, seed=1), frame(3000, seed=2)
    store.write("orders", old)
    old_bytes = direct(s3_server).get_object(Bucket=bucket, Key=key)["Body"].read()
    visible: list[bytes | None] = []

    def look(_fault: object) -> None:
        try:
            visible.append(direct(s3_server).get_object(Bucket=bucket, Key=key)["Body"].read())
        except direct(s3_server).exceptions.NoSuchKey:
            visible.append(None)

    plan.after_fault = look
    plan.inject("PUT", DropRequest(), DropResponse(), DropRequest())
    store.write("orders", new)
    plan.inject("GET", DropResponse(), DropRequest())
    assert_frame_equal(store.read("orders"), new)

    new_bytes = direct(s3_server).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(plan.faults_fired()) == 5
    assert visible and all(seen in (old_bytes, new_bytes) for seen in visible)
    assert visible[0] == old_bytes  # the cut upload was not stored
    uploads = direct(s3_server).list_multipart_uploads(Bucket=bucket)
    assert not uploads.get("Uploads")
