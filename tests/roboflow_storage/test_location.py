from __future__ import annotations

from pathlib import Path

import pytest

from roboflow_core import StorageError
from roboflow_storage._backends import oss_endpoint
from roboflow_storage._glob import compile_glob, literal_prefix
from roboflow_storage._location import parse_location


@pytest.mark.parametrize(
    ("url", "scheme", "bucket", "prefix"),
    [
        ("s3://bkt/a/b/", "s3", "bkt", "a/b"),
        ("s3a://bkt", "s3", "bkt", ""),
        ("oss://bkt/x?endpoint=oss-cn-hangzhou.aliyuncs.com", "oss", "bkt", "x"),
        ("memory://name/p", "memory", "name", "p"),
        ("file:///tmp/a%20b", "file", "", "/tmp/a b"),
    ],
)
def test_parse(url: str, scheme: str, bucket: str, prefix: str) -> None:
    loc = parse_location(url)
    assert (loc.scheme, loc.bucket, loc.prefix) == (scheme, bucket, prefix)


def test_plain_paths_are_absolute_and_display_and_repr_hide_query() -> None:
    assert parse_location("rel/dir").prefix == str(Path("rel/dir").absolute())
    loc = parse_location("s3://bkt/p?region=eu-west-1&endpoint=http://h:1")
    assert loc.display("k.mcap") == "s3://bkt/p/k.mcap"
    assert loc.options == {"region": "eu-west-1", "endpoint": "http://h:1"}
    assert repr(loc) == "Location('s3://bkt/p')" and "h:1" not in f"{loc} {[loc]}"


@pytest.mark.parametrize("key", ["access_key_id", "secret_access_key", "session_token"])
def test_credentials_in_a_url_are_refused_with_the_way_to_give_them(key: str) -> None:
    with pytest.raises(StorageError, match=f"{key} in the URL: credentials are not accepted") as info:
        parse_location(f"s3://bkt/p?endpoint=https://h&{key}=S3CR3T-VALUE")
    assert "environment" in info.value.reason and "Kubernetes Secret" in info.value.reason
    assert "S3CR3T-VALUE" not in str(info.value) and not info.value.transient


def test_allow_http_in_a_url_is_refused() -> None:
    with pytest.raises(StorageError, match="ROBOFLOW_ALLOWED_ENDPOINTS"):
        parse_location("s3://bkt/p?endpoint=http://h:1&allow_http=true")


@pytest.mark.parametrize(
    ("endpoint", "expected", "region"),
    [
        ("oss-cn-hangzhou.aliyuncs.com", "https://bkt.s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"),
        (
            "https://oss-cn-beijing-internal.aliyuncs.com",
            "https://bkt.s3.oss-cn-beijing-internal.aliyuncs.com",
            "cn-beijing",
        ),
        (
            "https://s3.oss-eu-central-1.aliyuncs.com",
            "https://bkt.s3.oss-eu-central-1.aliyuncs.com",
            "eu-central-1",
        ),
        ("http://127.0.0.1:9000", "http://bkt.127.0.0.1:9000", None),
    ],
)
def test_oss_endpoints_map_to_the_s3_compatible_api(endpoint: str, expected: str, region: str | None) -> None:
    assert oss_endpoint(endpoint, "bkt") == (expected, region)


def test_oss_path_style_on_request() -> None:
    assert oss_endpoint("http://127.0.0.1:9000", "bkt", virtual_hosted=False) == (
        "http://127.0.0.1:9000",
        None,
    )


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.mcap", ["a.mcap"], ["d/a.mcap", "a.bag"]),
        ("d/**/*.bag", ["d/a.bag", "d/x/y/a.bag"], ["a.bag", "e/a.bag"]),
        ("**", ["a", "d/e/f"], []),
        ("run_?.db3", ["run_1.db3"], ["run_10.db3", "run_/.db3"]),
        ("[ab]*.mcap", ["a1.mcap", "b.mcap"], ["c.mcap"]),
        ("[!a]*.mcap", ["b.mcap"], ["a.mcap"]),
        ("x+(1).mcap", ["x+(1).mcap"], ["xx(1).mcap"]),
    ],
)
def test_glob(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern)
    assert all(regex.match(key) for key in matches)
    assert not any(regex.match(key) for key in misses)


def test_literal_prefix() -> None:
    assert literal_prefix("a/b/*.mcap") == "a/b"
    assert literal_prefix("a/b*/c") == "a"
    assert literal_prefix("*.mcap") == ""
