"""eotoolkit against a real S3 server (Ceph RADOS Gateway on loopback, tests/s3/rig.py).

COGs and STAC catalogs are written locally, uploaded, then read back through ``s3://`` hrefs;
credentials come from ``storage_options``, the environment or ``~/.aws``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pystac
import pytest
import rasterio

import eotoolkit as eo
from eotoolkit._reader import clear_cache
from eotoolkit.errors import (
    AssetNotFoundError,
    AssetReadError,
    StorageAccessError,
    StorageNotFoundError,
    StorageUnreachableError,
)
from eotoolkit.stores import storage
from eotoolkit.synthetic.s2 import write_s2_collection
from tests.s3.rig import RigInfo, S3User, free_port

pytestmark = pytest.mark.s3

AWS_VARS = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_NO_SIGN_REQUEST",
    "AWS_REQUEST_PAYER",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_CA_BUNDLE",
]


@pytest.fixture(autouse=True)
def _isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS settings of the machine leak in: empty environment, HOME without ~/.aws."""
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def options(rig: RigInfo, user: S3User | None = None, **extra: str) -> dict[str, str]:
    user = user or rig.owner
    return {
        "endpoint_url": rig.endpoint,
        "key": user.access_key,
        "secret": user.secret_key,
        **extra,
    }


def s3fs_of(rig: RigInfo) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", **storage.fsspec_options(storage.resolve(options(rig))))


@pytest.fixture(scope="module")
def s2_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-tile, 2-date synthetic Sentinel-2 collection on local disk (relative hrefs)."""
    root = tmp_path_factory.mktemp("s2-local")
    write_s2_collection(root, tiles=2, dates=2, size=128, seed=3)
    return root


@pytest.fixture(scope="module")
def s2_s3(s3_rig: RigInfo, s2_local: Path) -> str:
    """The same collection uploaded under a fresh prefix: its s3:// catalog URL."""
    prefix = f"{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}/s2"
    s3fs_of(s3_rig).put(str(s2_local) + "/", prefix + "/", recursive=True)
    return f"s3://{prefix}/catalog.json"


def test_search_and_load_from_s3_equal_local(s3_rig: RigInfo, s2_local: Path, s2_s3: str) -> None:
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    hrefs = {a.get_absolute_href() for i in items for a in i.assets.values()}
    assert all(h and h.startswith("s3://") for h in hrefs)
    remote = eo.load(items, bands=["B04", "SCL"], chunks=96, storage_options=options(s3_rig))
    local = eo.load(eo.search(str(s2_local / "catalog.json")), bands=["B04", "SCL"], chunks=96)
    for band in ("B04", "SCL"):
        a, b = remote[band].values, local[band].values
        assert a.shape == b.shape and a.size > 0
        np.testing.assert_array_equal(a, b)
    assert remote.rio.crs == local.rio.crs


def test_endpoint_https_hrefs_read_signed(s3_rig: RigInfo, s2_s3: str) -> None:
    """Hrefs on the configured endpoint (http(s)://endpoint/bucket/key) are read signed."""
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    for item in items:
        for asset in item.assets.values():
            href = asset.get_absolute_href() or ""
            asset.href = s3_rig.endpoint + "/" + href.removeprefix("s3://")
    ds = eo.load(items, bands=["B04"], chunks=128, storage_options=options(s3_rig))
    assert np.isfinite(ds.B04.values).mean() > 0.5


def test_zarr_on_s3_reopens_with_crs(s3_rig: RigInfo, s2_s3: str) -> None:
    so = options(s3_rig)
    ds = eo.load(eo.search(s2_s3, storage_options=so), bands=["B04"], chunks=64, storage_options=so)
    store = f"s3://{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}/out.zarr"
    eo.to_zarr(ds, store, storage_options=so)
    back = eo.open_zarr(store, storage_options=so)
    assert back.rio.crs == ds.rio.crs
    np.testing.assert_array_equal(back.B04.values, ds.B04.values)
    assert eo.to_zarr(ds, store, mode="resume", storage_options=so) == store


def test_to_cog_on_s3(s3_rig: RigInfo, s2_s3: str) -> None:
    so = options(s3_rig)
    ds = eo.load(eo.search(s2_s3, storage_options=so), bands=["B04"], storage_options=so)
    arr = ds.B04.isel(time=0).compute()
    url = f"s3://{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}/b04.tif"
    assert eo.to_cog(arr, url, storage_options=so) == url
    with (
        storage.gdal_env(storage.resolve(so)),
        rasterio.open("/vsis3/" + url[5:]) as src,
    ):
        assert src.crs == ds.rio.crs
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(src.read(1), arr.values)


def _first_asset(items: pystac.ItemCollection) -> tuple[str, str]:
    href = items[0].assets["B04"].get_absolute_href() or ""
    return storage.split(href)


def test_wrong_secret_is_access_denied_naming_bucket_and_key(s3_rig: RigInfo, s2_s3: str) -> None:
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    bad = dict(options(s3_rig), secret="x" * 40)
    with pytest.raises(StorageAccessError) as err:
        eo.load(items[:1], bands=["B04"], storage_options=bad).B04.compute()
    assert isinstance(err.value, AssetReadError)
    assert err.value.reason == "credentials"
    bucket, key = _first_asset(items[:1])
    assert err.value.bucket == bucket and err.value.key == key
    assert "access denied" in str(err.value) and "wrong secret" in str(err.value)
    assert f"s3://{bucket}/{key}" in str(err.value)
    with pytest.raises(StorageAccessError, match="wrong secret"):
        eo.search(s2_s3, storage_options=bad)


def test_missing_permission_is_told_from_wrong_key(s3_rig: RigInfo, s2_s3: str) -> None:
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    with pytest.raises(StorageAccessError) as err:
        eo.load(items[:1], bands=["B04"], storage_options=options(s3_rig, s3_rig.other)).compute()
    assert err.value.reason == "permission"
    assert "lack the permission" in str(err.value)
    unknown = dict(options(s3_rig), key="EONOSUCHKEY000000000")
    with pytest.raises(StorageAccessError, match="wrong access key id") as err2:
        eo.search(s2_s3, storage_options=unknown)
    assert err2.value.reason == "credentials"


def test_missing_bucket(s3_rig: RigInfo) -> None:
    with pytest.raises(StorageNotFoundError, match="bucket 'eo-no-such-bucket' does not exist"):
        eo.search("s3://eo-no-such-bucket/cat/catalog.json", storage_options=options(s3_rig))
    with pytest.raises(StorageNotFoundError, match="eo-no-such-bucket"):
        eo.open_zarr("s3://eo-no-such-bucket/x.zarr", storage_options=options(s3_rig))


def test_unreachable_endpoint_names_host_and_port(s3_rig: RigInfo, s2_s3: str) -> None:
    port = free_port()
    so = dict(options(s3_rig), endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(StorageUnreachableError, match=f"127.0.0.1:{port}.*connection refused"):
        eo.search(s2_s3, storage_options=so)
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    with pytest.raises(StorageUnreachableError) as err:
        eo.load(items[:1], bands=["B04"], storage_options=so).B04.compute()
    assert err.value.endpoint == f"127.0.0.1:{port}"


def test_object_vanished_mid_run(s3_rig: RigInfo, s2_local: Path) -> None:
    prefix = f"{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}/s2"
    fs = s3fs_of(s3_rig)
    fs.put(str(s2_local) + "/", prefix + "/", recursive=True)
    so = options(s3_rig)
    items = eo.search(f"s3://{prefix}/catalog.json", storage_options=so)[:1]
    ds = eo.load(items, bands=["B04"], chunks=64, storage_options=so)
    ds.B04.compute()
    bucket, key = _first_asset(items)
    fs.rm(f"{bucket}/{key}")
    clear_cache()
    with pytest.raises(AssetNotFoundError, match="vanished") as err:
        ds.B04.compute()
    assert err.value.key == key


def test_credentials_from_aws_profile(
    s3_rig: RigInfo, s2_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = Path(os.environ["HOME"]) / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "credentials").write_text(
        f"[rgw]\naws_access_key_id = {s3_rig.owner.access_key}\n"
        f"aws_secret_access_key = {s3_rig.owner.secret_key}\n"
    )
    (aws / "config").write_text(
        f"[profile rgw]\nregion = {s3_rig.region}\nendpoint_url = {s3_rig.endpoint}\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "rgw")
    cfg = storage.resolve()
    assert cfg.access_key_id == s3_rig.owner.access_key and "profile 'rgw'" in cfg.credentials_from
    items = eo.search(s2_s3)
    ds = eo.load(items, bands=["B04"], chunks=128)
    assert np.isfinite(ds.B04.values).mean() > 0.5


def test_credentials_from_environment(
    s3_rig: RigInfo, s2_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_rig.owner.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_rig.owner.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_rig.endpoint)
    monkeypatch.setenv("AWS_REGION", s3_rig.region)
    ds = eo.load(eo.search(s2_s3), bands=["B04"], chunks=128)
    assert np.isfinite(ds.B04.values).mean() > 0.5


def test_rclone_remote_from_environment(s3_rig: RigInfo, s2_s3: str) -> None:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(storage.rclone_env(storage.resolve(options(s3_rig)), "rgw"))
    prefix = s2_s3.removeprefix("s3://").rsplit("/", 1)[0]
    out = subprocess.run(
        ["rclone", "lsf", f"rgw:{prefix}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "catalog.json" in out.stdout.split()


def _private_or_free_of(secret: str, roots: list[Path]) -> list[str]:
    """Files under ``roots`` readable by group/other that contain ``secret``."""
    bad = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or not path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
                continue
            try:
                if secret.encode() in path.read_bytes():
                    bad.append(str(path))
            except OSError:
                continue
    return bad


def test_secret_never_shown(
    s3_rig: RigInfo,
    s2_s3: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = s3_rig.owner.secret_key
    so = options(s3_rig)
    cfg = storage.resolve(so)
    texts = [repr(cfg), str(cfg), repr(cfg.secret_access_key)]
    items = eo.search(s2_s3, storage_options=so)
    ds = eo.load(items, bands=["B04"], chunks=64, storage_options=so)
    texts.append(repr(ds))
    graph = ds.B04.data.__dask_graph__()
    texts.extend(repr(task) for task in list(dict(graph).values())[:5])
    store = f"s3://{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}/s.zarr"
    eo.to_zarr(ds, store, storage_options=so)
    bad_secret = dict(so, secret=secret[::-1])
    for run in (
        lambda: eo.load(items[:1], bands=["B04"], storage_options=bad_secret).B04.values,
        lambda: eo.search(s2_s3, storage_options=bad_secret),
        lambda: eo.open_zarr(store, storage_options=bad_secret),
        lambda: eo.open_zarr(store, storage_options=dict(so, endpoint_url="http://127.0.0.1:1")),
        lambda: (
            eo.load(
                items[:1],
                bands=["B04"],
                storage_options=dict(so, endpoint_url="http://127.0.0.1:1"),
            ).B04.values
        ),
    ):
        with pytest.raises(Exception) as err:
            run()
        chain: BaseException | None = err.value
        while chain is not None:
            texts.extend([str(chain), repr(chain)])
            chain = chain.__cause__ or chain.__context__
    texts.append(caplog.text)
    for text in texts:
        assert secret not in text and secret[::-1] not in text
    assert not _private_or_free_of(secret, [tmp_path, Path(os.environ["HOME"])])
    assert "***" in repr(cfg)


def test_build_catalog_and_copy_assets_on_s3(s3_rig: RigInfo, s2_local: Path) -> None:
    so = options(s3_rig)
    files = sorted(s2_local.rglob("B04.tif"))[:2]
    base = f"s3://{s3_rig.bucket}/t-{uuid.uuid4().hex[:8]}"
    by_folder = {"grouping": lambda p: (p.parent.name, "data")}
    local_cat = eo.build_catalog(files, s2_local / "tmp-cat", **by_folder)
    copies = eo.copy_assets(
        local_cat, "data", f"{base}/cogs", update_catalog=False, storage_options=so
    )
    remote_files = sorted(copies.values())
    assert all(str(p).startswith(f"{base}/cogs/") for p in remote_files)
    cat = eo.build_catalog(remote_files, f"{base}/catalog", storage_options=so, **by_folder)
    assert cat.get_self_href() == f"{base}/catalog/catalog.json"
    items = eo.search(f"{base}/catalog/catalog.json", storage_options=so)
    hrefs = {a.get_absolute_href() for i in items for a in i.assets.values()}
    assert hrefs == set(map(str, remote_files))  # stored relative to the item: portable
    ds = eo.load(items, bands=["data"], groupby=None, storage_options=so)
    with rasterio.open(files[0]) as src:
        first = src.read(1)
    assert ds.data.shape[0] == 2 and first.shape[0] == ds.data.shape[1]
    local = eo.copy_assets(cat, "data", s2_local / "back", storage_options=so)
    assert all(Path(p).is_file() for p in local.values())


def _admin_client(rig: RigInfo, user: S3User | None = None) -> Any:
    return storage._client(storage.resolve(options(rig, user)))


def _new_bucket(rig: RigInfo, policy: dict[str, Any], s2_local: Path) -> Iterator[str]:
    """A fresh bucket of the owner with ``policy``, holding the S2 collection at s2/; deleted
    afterwards."""
    s3 = _admin_client(rig)
    bucket = f"eo-t-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy).replace("BUCKET", bucket))
        s3fs_of(rig).put(str(s2_local) + "/", f"{bucket}/s2/", recursive=True)
        yield bucket
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def _read_policy(principal: object) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": principal,
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": ["arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/*"],
            }
        ],
    }


@pytest.fixture
def public_bucket(s3_rig: RigInfo, s2_local: Path) -> Iterator[str]:
    """A bucket anyone may list and read (bucket policy with principal "*")."""
    yield from _new_bucket(s3_rig, _read_policy("*"), s2_local)


@pytest.fixture
def requester_pays_bucket(s3_rig: RigInfo, s2_local: Path) -> Iterator[str]:
    """A requester-pays bucket of the owner that the other user may read."""
    principal = {"AWS": [f"arn:aws:iam:::user/{s3_rig.other.uid}"]}
    gen = _new_bucket(s3_rig, _read_policy(principal), s2_local)
    bucket = next(gen)
    _admin_client(s3_rig).put_bucket_request_payment(
        Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    yield bucket
    with contextlib.suppress(StopIteration):
        next(gen)


def _rclone(rig: RigInfo, cfg: storage.S3Config, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(storage.rclone_env(cfg, "rgw"))
    return subprocess.run(
        ["rclone", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_unsigned_reads_of_a_public_bucket(
    s3_rig: RigInfo, s2_local: Path, public_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """anon=True reads a public-read bucket through pystac, GDAL, s3fs and rclone, with no
    credentials anywhere; so does a process that has only an endpoint and no credentials."""
    url = f"s3://{public_bucket}/s2/catalog.json"
    anon = {"endpoint_url": s3_rig.endpoint, "anon": True}
    cfg = storage.resolve(anon)
    assert cfg.anonymous and storage.gdal_config(cfg)["AWS_NO_SIGN_REQUEST"] == "YES"
    assert "AWS_SECRET_ACCESS_KEY" not in storage.gdal_config(cfg)
    items = eo.search(url, storage_options=anon)  # pystac through s3fs
    ds = eo.load(items, bands=["B04"], chunks=128, storage_options=anon)  # GDAL /vsis3/
    local = eo.load(eo.search(str(s2_local / "catalog.json")), bands=["B04"], chunks=128)
    np.testing.assert_array_equal(ds.B04.values, local.B04.values)
    fs = fsspec.filesystem("s3", **storage.fsspec_options(cfg))
    assert fs.cat(f"{public_bucket}/s2/catalog.json") == (s2_local / "catalog.json").read_bytes()
    listed = _rclone(s3_rig, cfg, "lsf", f"rgw:{public_bucket}/s2")
    assert listed.returncode == 0 and "catalog.json" in listed.stdout.split(), listed.stderr
    assert "RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY" not in storage.rclone_env(cfg, "rgw")
    # No credentials at all: requests go unsigned, and the public bucket still reads.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_rig.endpoint)
    assert storage.resolve().anonymous
    assert len(eo.search(url)) == len(items)


def test_unsigned_read_of_a_private_bucket_is_denied_naming_bucket_and_key(
    s3_rig: RigInfo, s2_s3: str
) -> None:
    anon = {"endpoint_url": s3_rig.endpoint, "anon": True}
    bucket, catalog_key = storage.split(s2_s3)
    assert bucket == s3_rig.bucket
    with pytest.raises(StorageAccessError) as err:
        eo.search(s2_s3, storage_options=anon)
    text = str(err.value)
    assert err.value.bucket == bucket and err.value.key == catalog_key
    assert f"access denied to s3://{bucket}/{catalog_key}" in text
    assert "does not allow an unsigned request" in text and "set credentials" in text
    items = eo.search(s2_s3, storage_options=options(s3_rig))
    asset_bucket, asset_key = _first_asset(items[:1])
    with pytest.raises(StorageAccessError) as err2:
        eo.load(items[:1], bands=["B04"], storage_options=anon).B04.compute()
    assert isinstance(err2.value, AssetReadError)
    assert err2.value.bucket == asset_bucket and err2.value.key == asset_key
    assert f"s3://{asset_bucket}/{asset_key}" in str(err2.value)
    assert "unsigned request" in str(err2.value)


def test_requester_pays_bucket(s3_rig: RigInfo, s2_local: Path, requester_pays_bucket: str) -> None:
    """RGW enforces requester pays: the other user, allowed to read by the bucket policy, is
    denied without the x-amz-request-payer header and reads with requester_pays=True, through
    pystac/s3fs, GDAL (AWS_REQUEST_PAYER) and rclone alike."""
    url = f"s3://{requester_pays_bucket}/s2/catalog.json"
    plain = options(s3_rig, s3_rig.other)
    with pytest.raises(StorageAccessError) as err:
        eo.search(url, storage_options=plain)
    assert err.value.reason == "permission" and err.value.bucket == requester_pays_bucket
    assert "pass requester_pays=True" in str(err.value)
    paying = dict(plain, requester_pays="true")
    cfg = storage.resolve(paying)
    assert storage.gdal_config(cfg)["AWS_REQUEST_PAYER"] == "requester"
    assert storage.fsspec_options(cfg)["requester_pays"] is True
    items = eo.search(url, storage_options=paying)
    ds = eo.load(items, bands=["B04"], chunks=128, storage_options=paying)
    local = eo.load(eo.search(str(s2_local / "catalog.json")), bands=["B04"], chunks=128)
    np.testing.assert_array_equal(ds.B04.values, local.B04.values)
    # GDAL alone: the same object is denied without the header.
    items_plain = eo.search(url, storage_options=paying)[:1]
    clear_cache()
    with pytest.raises(StorageAccessError, match="requester_pays=True"):
        eo.load(items_plain, bands=["B04"], storage_options=plain).B04.compute()
    ok = _rclone(s3_rig, cfg, "lsf", f"rgw:{requester_pays_bucket}/s2")
    assert ok.returncode == 0 and "catalog.json" in ok.stdout.split(), ok.stderr
    denied = _rclone(s3_rig, storage.resolve(plain), "lsf", f"rgw:{requester_pays_bucket}/s2")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr


@pytest.fixture(autouse=True)
def _fresh_handles() -> Iterator[None]:
    yield
    clear_cache()
