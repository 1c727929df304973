"""Smoke test of the moto S3 test server helper."""

from __future__ import annotations

from pathlib import Path

from tests.support.s3 import S3Server


def test_upload_dir_and_list_back(tmp_path: Path) -> None:
    (tmp_path / "s1" / "features").mkdir(parents=True)
    (tmp_path / "s1" / "annotations.csv").write_text("Image ID,Row,Column,Label ID\n1,10,20,82\n")
    (tmp_path / "s1" / "features" / "i1.featurevector").write_bytes(b"\x00\x01")
    with S3Server() as s3:
        assert s3.endpoint_url.startswith("http://127.0.0.1:")
        env = s3.env()
        assert env["AWS_ENDPOINT_URL"] == s3.endpoint_url
        assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_REGION"] == "us-east-1"
        s3.create_bucket("coralnet")
        keys = s3.upload_dir(tmp_path, "coralnet", "root/")
        assert sorted(keys) == ["root/s1/annotations.csv", "root/s1/features/i1.featurevector"]
        client = s3.client()
        listed = client.list_objects_v2(Bucket="coralnet", Prefix="root/")
        assert sorted(o["Key"] for o in listed["Contents"]) == sorted(keys)
        body = client.get_object(Bucket="coralnet", Key="root/s1/annotations.csv")["Body"].read()
        assert body.endswith(b"1,10,20,82\n")
        s3.reset()
        assert "coralnet" not in [b["Name"] for b in client.list_buckets()["Buckets"]]
