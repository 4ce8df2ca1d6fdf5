"""Parquet storage and the landing zone on S3, over HTTP against moto's S3 server on loopback."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aiwf_assets.connections import s3_store
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.resources import LandingResource, StorageResource, build_resources
from aiwf_assets.settings import Settings

if TYPE_CHECKING:
    from tests.s3_server import S3Endpoint

pytest_plugins = ["tests.s3_server"]  # the s3_server and s3_endpoint fixtures


def orders_frame(n: int, day: date) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": [f"o-{day:%Y%m%d}-{i}" for i in range(n)],
            "quantity": list(range(n)),
            "amount": [i * 1.25 for i in range(n)],
            "order_date": [day] * n,
            "ordered_at": [datetime(day.year, day.month, day.day, 12, tzinfo=UTC)] * n,
            "is_return": [i % 7 == 0 for i in range(n)],
            "coupon": [None if i % 3 else "WELCOME" for i in range(n)],
        }
    )


def store_on(endpoint: S3Endpoint, prefix: str = "aiwf/storage") -> ParquetStore:
    return s3_store(endpoint.uri(prefix), endpoint.resource())


def object_keys(endpoint: S3Endpoint, prefix: str = "") -> list[str]:
    listing = endpoint.client().list_objects_v2(Bucket=endpoint.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_unpartitioned_round_trip(s3_endpoint: S3Endpoint) -> None:
    store = store_on(s3_endpoint)
    frame = orders_frame(50, date(2026, 1, 1))

    uri = store.write("customer_features", frame)

    assert uri == s3_endpoint.uri("aiwf/storage/customer_features.parquet")
    assert store.exists("customer_features")
    assert_frame_equal(store.read("customer_features"), frame)
    body = (
        s3_endpoint.client()
        .get_object(Bucket=s3_endpoint.bucket, Key="aiwf/storage/customer_features.parquet")["Body"]
        .read()
    )
    assert body[:4] == b"PAR1" and body[-4:] == b"PAR1"


def test_partitioned_round_trip_and_listing(s3_endpoint: S3Endpoint) -> None:
    store = store_on(s3_endpoint)
    days = [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 2)]
    for day in days:
        store.write("raw_web_orders", orders_frame(10 + day.day, day), partition=f"{day}")
    # objects that are not partitions of the asset
    s3_endpoint.client().put_object(
        Bucket=s3_endpoint.bucket, Key="aiwf/storage/raw_web_orders/_SUCCESS", Body=b""
    )
    store.write("raw_app_orders", orders_frame(3, days[0]), partition="2026-01-03")

    assert store.partitions("raw_web_orders") == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert store.partitions("never_written") == []
    for day in days:
        assert_frame_equal(
            store.read("raw_web_orders", partition=f"{day}"), orders_frame(10 + day.day, day)
        )
    assert not store.exists("raw_web_orders", partition="2026-01-04")
    with pytest.raises(FileNotFoundError, match=r"s3://.*raw_web_orders/2026-01-04\.parquet"):
        store.read("raw_web_orders", partition="2026-01-04")

    store.write("raw_web_orders", orders_frame(2, days[1]), partition="2026-01-01")
    assert store.read("raw_web_orders", partition="2026-01-01").height == 2
    assert store.partitions("raw_web_orders") == ["2026-01-01", "2026-01-02", "2026-01-03"]


def test_a_replaced_object_is_always_read_whole(s3_endpoint: S3Endpoint) -> None:
    """Readers racing a rewrite see the old table or the new one, never a part or a gap.

    The new table is large enough (about 16 MB of incompressible floats) for the
    S3 client to send it as a multipart upload.
    """
    store = store_on(s3_endpoint)
    old = pl.DataFrame({"x": np.arange(1_000, dtype=np.float64)})
    new = pl.DataFrame({"x": np.random.default_rng(7).random(2_000_000)})
    store.write("demand_features", old)

    seen_heights: set[int] = set()
    errors: list[BaseException] = []
    writer = threading.Thread(target=store.write, args=("demand_features", new))

    def read_while_writing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = not writer.is_alive()
            try:
                seen_heights.add(store.read("demand_features").height)
            except Exception as exc:  # any failed read is a torn or missing object
                errors.append(exc)
            if done:
                return

    reader = threading.Thread(target=read_while_writing)
    writer.start()
    reader.start()
    writer.join(timeout=60)
    reader.join(timeout=70)

    assert not errors, errors[:3]
    assert seen_heights <= {old.height, new.height}
    assert new.height in seen_heights
    assert_frame_equal(store.read("demand_features"), new)
    assert object_keys(s3_endpoint, "aiwf/storage/demand_features") == [
        "aiwf/storage/demand_features.parquet"
    ]
    uploads = s3_endpoint.client().list_multipart_uploads(Bucket=s3_endpoint.bucket)
    assert not uploads.get("Uploads"), "a multipart upload was left open"


def test_landing_resource_lists_reads_and_fingerprints_s3_files(s3_endpoint: S3Endpoint) -> None:
    client = s3_endpoint.client()
    small = b"order_id,amount\no-1,10.5\no-2,3.0\n"
    large = np.random.default_rng(3).bytes(3 * 1024 * 1024 + 17)  # several read chunks
    for key, body in {
        "aiwf/landing/web_orders/2026-01-01.csv": small,
        "aiwf/landing/web_orders/2026-01-02.csv": large,
        "aiwf/landing/web_orders/.2026-01-03.csv.uploading": b"partial",
        "aiwf/landing/app_orders/2026-01-01.csv": b"other channel",
    }.items():
        client.put_object(Bucket=s3_endpoint.bucket, Key=key, Body=body)
    landing = LandingResource(root=s3_endpoint.uri("aiwf/landing"), s3=s3_endpoint.resource())

    assert landing.list_files("web_orders") == {
        "2026-01-01.csv": f"{s3_endpoint.bucket}/aiwf/landing/web_orders/2026-01-01.csv",
        "2026-01-02.csv": f"{s3_endpoint.bucket}/aiwf/landing/web_orders/2026-01-02.csv",
    }
    assert landing.list_files("store_pos") == {}
    assert landing.read_bytes("web_orders/2026-01-01.csv") == small
    assert landing.fingerprint("web_orders/2026-01-01.csv") == hashlib.sha256(small).hexdigest()
    assert landing.fingerprint("web_orders/2026-01-02.csv") == hashlib.sha256(large).hexdigest()
    assert landing.fingerprint("web_orders/2026-01-09.csv") is None
    with pytest.raises(FileNotFoundError, match="was it delivered"):
        landing.read_bytes("web_orders/2026-01-09.csv")

    # a re-delivery with the same bytes keeps the fingerprint; new bytes change it
    before = landing.fingerprint("web_orders/2026-01-01.csv")
    client.put_object(
        Bucket=s3_endpoint.bucket, Key="aiwf/landing/web_orders/2026-01-01.csv", Body=small
    )
    assert landing.fingerprint("web_orders/2026-01-01.csv") == before
    client.put_object(
        Bucket=s3_endpoint.bucket,
        Key="aiwf/landing/web_orders/2026-01-01.csv",
        Body=small + b"o-3,1.0\n",
    )
    assert landing.fingerprint("web_orders/2026-01-01.csv") != before


def test_prod_resources_reach_the_configured_endpoint(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    settings = Settings(
        env="prod",
        home=tmp_path,
        s3_bucket=s3_endpoint.bucket,
        s3_prefix="aiwf",
        s3_endpoint=s3_endpoint.url,
    )
    resources = build_resources(settings)
    storage = resources["storage"]
    landing = resources["landing"]
    assert isinstance(storage, StorageResource) and isinstance(landing, LandingResource)

    frame = orders_frame(5, date(2026, 2, 1))
    storage.store().write("orders", frame, partition="2026-02-01")
    s3_endpoint.client().put_object(
        Bucket=s3_endpoint.bucket, Key="aiwf/landing/crm_tickets/2026-02-01.json", Body=b"[]"
    )

    assert "aiwf/storage/orders/2026-02-01.parquet" in object_keys(s3_endpoint, "aiwf/storage")
    assert_frame_equal(storage.store().read("orders", partition="2026-02-01"), frame)
    assert landing.read_bytes("crm_tickets/2026-02-01.json") == b"[]"
