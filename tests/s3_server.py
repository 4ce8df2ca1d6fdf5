"""A real S3 endpoint on loopback for tests: moto's server over HTTP, not in-process mocks.

Clients talk to it exactly as they would to S3 (boto3 with `endpoint_url`,
pyarrow's S3FileSystem with `endpoint_override`), so what passes here went
through the S3 wire protocol. One server per test session; each test gets a
bucket of its own and test credentials in its environment.

Use it from a test module with

    pytest_plugins = ["tests.s3_server"]

and ask for `s3_endpoint` in a test (import `S3Endpoint` for the annotation
under `TYPE_CHECKING` only: importing this module before pytest loads it as a
plugin stops pytest from rewriting its asserts).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Endpoint:
    url: str  # http://127.0.0.1:<port>
    bucket: str

    def client(self):
        """A boto3 S3 client for this endpoint (credentials from the environment)."""
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def resource(self) -> S3Resource:
        """dagster-aws's S3 resource for this endpoint, as the prod resources get one."""
        return S3Resource(endpoint_url=self.url, region_name="us-east-1")

    def uri(self, *parts: str) -> str:
        """`s3://<bucket>/<parts...>`."""
        return "/".join([f"s3://{self.bucket}", *(p.strip("/") for p in parts)])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 at a free port, for the whole session; yields its URL."""
    # moto's HTTP server logs every request at INFO, which buries a failure's report
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """A fresh bucket on the session's S3 server, with test credentials in the environment."""
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    # a developer's own endpoint or profile must not redirect the clients
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    endpoint = S3Endpoint(url=s3_server, bucket=f"aiwf-test-{uuid.uuid4().hex[:12]}")
    endpoint.client().create_bucket(Bucket=endpoint.bucket)
    return endpoint
