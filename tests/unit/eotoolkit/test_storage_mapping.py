"""eotoolkit.stores.storage's mapping of unsigned and requester-pays access to GDAL, s3fs and rclone
(no server: what each library is told; tests/s3 reads through it from a real RGW)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eotoolkit.stores import storage


@pytest.fixture
def no_files(tmp_path: Path) -> dict[str, str]:
    """An environment whose shared AWS files do not exist."""
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_ENDPOINT_URL": "http://s3.example.org:7480",
    }


KEYS = {"key": "EOEXAMPLEKEY00000000", "secret": "example-secret-value-0123456789"}


def test_anonymous_is_unsigned_everywhere(no_files: dict[str, str]) -> None:
    for cfg in (
        storage.resolve({"anon": True, **KEYS}, env=no_files),
        storage.resolve(env={**no_files, "AWS_NO_SIGN_REQUEST": "YES"}),
        storage.resolve(env=no_files),  # no credentials anywhere
    ):
        assert cfg.anonymous
        gdal = storage.gdal_config(cfg)
        assert gdal["AWS_NO_SIGN_REQUEST"] == "YES"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(gdal)
        fs = storage.fsspec_options(cfg)
        assert fs["anon"] is True and "key" not in fs and "secret" not in fs
        rclone = storage.rclone_env(cfg, "pub")
        assert rclone["RCLONE_CONFIG_PUB_ENV_AUTH"] == "false"
        assert not any("ACCESS_KEY" in k for k in rclone)


def test_signed_is_not_anonymous(no_files: dict[str, str]) -> None:
    cfg = storage.resolve(KEYS, env=no_files)
    assert not cfg.anonymous
    assert storage.gdal_config(cfg)["AWS_NO_SIGN_REQUEST"] == "NO"
    assert "anon" not in storage.fsspec_options(cfg)
    assert storage.rclone_env(cfg, "x")["RCLONE_CONFIG_X_SECRET_ACCESS_KEY"] == KEYS["secret"]


@pytest.mark.parametrize(
    "options, env",
    [
        ({"requester_pays": True}, {}),
        ({"requester_pays": "true"}, {}),
        ({}, {"AWS_REQUEST_PAYER": "requester"}),
    ],
)
def test_requester_pays_reaches_gdal_s3fs_and_rclone(
    no_files: dict[str, str], options: dict[str, object], env: dict[str, str]
) -> None:
    cfg = storage.resolve({**KEYS, **options}, env={**no_files, **env})
    assert cfg.requester_pays
    assert storage.gdal_config(cfg)["AWS_REQUEST_PAYER"] == "requester"
    assert storage.fsspec_options(cfg)["requester_pays"] is True
    assert storage.rclone_env(cfg, "rp")["RCLONE_CONFIG_RP_REQUESTER_PAYS"] == "true"


def test_no_requester_pays_by_default(no_files: dict[str, str]) -> None:
    cfg = storage.resolve(KEYS, env=no_files)
    assert "AWS_REQUEST_PAYER" not in storage.gdal_config(cfg)
    assert "requester_pays" not in storage.fsspec_options(cfg)
    assert "RCLONE_CONFIG_RP_REQUESTER_PAYS" not in storage.rclone_env(cfg, "rp")
