"""The user's S3 settings, one mapping for GDAL, fsspec/s3fs and rclone (standard library only).

Users set credentials and the endpoint once, where they keep them: the standard AWS
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``), the profiles of
``~/.aws/credentials`` and ``~/.aws/config``, or an explicit ``storage_options=`` mapping
(s3fs's keys: ``key``, ``secret``, ``token``, ``endpoint_url``, ``region``/``client_kwargs``,
``anon``, ``requester_pays``, ``profile``). :func:`resolve` turns them into one
:class:`S3Config`; :func:`gdal_config`, :func:`fsspec_options` and :func:`rclone_env` give the
same settings to GDAL's ``/vsis3/``, to s3fs (Zarr, catalogs, copies) and to rclone.
eotoolkit reads and writes with them (``eotoolkit.stores.storage``); the launcher gives them to
a pipeline's rclone remotes.

Secrets (the secret key and the session token) are held in :class:`Secret`, whose ``repr`` and
``str`` are ``***``.
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_REGION = "us-east-1"
_ENV_NAMES = (
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
    "HOME",
)


class Secret:
    """A secret string: ``repr``/``str`` show ``***``; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        """The secret value, for the library that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Secret, (self._value,))


def _reveal(value: Secret | None) -> str | None:
    return value.reveal() if value is not None else None


@dataclass(frozen=True)
class S3Config:
    """Where S3 objects are and how to sign requests to them.

    ``endpoint_url`` is None for AWS itself; ``path_style`` None means path-style addressing
    when an endpoint is set (MinIO, Ceph RGW, ...) and virtual hosting on AWS.
    ``credentials_from`` says where the credentials came from (for error messages).
    """

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    access_key_id: str | None = None
    secret_access_key: Secret | None = field(default=None, repr=False)
    session_token: Secret | None = field(default=None, repr=False)
    anonymous: bool = False
    requester_pays: bool = False
    path_style: bool | None = None
    profile: str | None = None
    credentials_from: str = "none"

    def __repr__(self) -> str:
        shown = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("secret_access_key", "session_token")
        }
        shown["access_key_id"] = mask_key_id(self.access_key_id)
        parts = [f"{k}={v!r}" for k, v in shown.items()]
        if self.secret_access_key:
            parts.append("secret_access_key='***'")
        if self.session_token:
            parts.append("session_token='***'")
        return f"S3Config({', '.join(parts)})"

    @property
    def use_path_style(self) -> bool:
        """Path-style addressing (``endpoint/bucket/key``)."""
        return self.path_style if self.path_style is not None else self.endpoint_url is not None

    @property
    def endpoint_host(self) -> str:
        """``host:port`` of the endpoint (AWS's regional endpoint when none is set)."""
        if self.endpoint_url is None:
            return f"s3.{self.region}.amazonaws.com:443"
        parts = urlsplit(self.endpoint_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"

    def token(self) -> str:
        """A short fingerprint of every setting (secrets included), to key open handles."""
        text = repr(
            [
                self.endpoint_url,
                self.region,
                self.access_key_id,
                _reveal(self.secret_access_key),
                _reveal(self.session_token),
                self.anonymous,
                self.requester_pays,
                self.use_path_style,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def scrub(self, text: str) -> str:
        """``text`` with the secret key and session token replaced by ``***``."""
        for secret in (self.secret_access_key, self.session_token):
            if secret:
                text = text.replace(secret.reveal(), "***")
        return text


#: What ``storage_options=`` accepts: a mapping of s3fs-style options or a ready S3Config.
StorageOptions = Mapping[str, Any] | S3Config


def mask_key_id(key_id: str | None) -> str | None:
    """An access key id shortened to its first and last four characters."""
    if not key_id:
        return key_id
    return key_id if len(key_id) <= 8 else f"{key_id[:4]}...{key_id[-4:]}"


# --- where settings come from ---------------------------------------------------------------

_ALIASES = {
    "key": "access_key_id",
    "aws_access_key_id": "access_key_id",
    "access_key_id": "access_key_id",
    "secret": "secret_access_key",
    "aws_secret_access_key": "secret_access_key",
    "secret_access_key": "secret_access_key",
    "token": "session_token",
    "aws_session_token": "session_token",
    "session_token": "session_token",
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "region": "region",
    "region_name": "region",
    "anon": "anonymous",
    "anonymous": "anonymous",
    "requester_pays": "requester_pays",
    "profile": "profile",
    "path_style": "path_style",
}


def _explicit(options: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise an s3fs-style mapping to S3Config field names."""
    out: dict[str, Any] = {}
    unknown = []
    for name, value in options.items():
        if name == "client_kwargs" and isinstance(value, Mapping):
            out.update(_explicit({k: v for k, v in value.items() if k in _ALIASES}))
        elif name == "config_kwargs" and isinstance(value, Mapping):
            style = (value.get("s3") or {}).get("addressing_style")
            if style in ("path", "virtual"):
                out["path_style"] = style == "path"
        elif name in _ALIASES:
            if value is not None:
                out[_ALIASES[name]] = value
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"unknown storage option(s) {sorted(unknown)}; use {sorted(set(_ALIASES))}, "
            "client_kwargs or config_kwargs"
        )
    return out


def _ini(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error):
        return None
    return parser


def _files(env: Mapping[str, str]) -> tuple[Path, Path]:
    home = Path(env.get("HOME") or Path.home())
    creds = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    config = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    return creds.expanduser(), config.expanduser()


def _nested(value: str) -> dict[str, str]:
    """The ``key = value`` lines of a nested section such as ``s3 =\\n  endpoint_url = ...``."""
    out = {}
    for line in value.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _profile_settings(profile: str, env: Mapping[str, str]) -> tuple[dict[str, str], str, str]:
    """(settings, credentials file, config file) of ``profile`` from the shared AWS files;
    the credentials file wins for keys it has."""
    creds_path, config_path = _files(env)
    settings: dict[str, str] = {}
    config = _ini(config_path)
    section = profile if profile == "default" else f"profile {profile}"
    if config is not None and config.has_section(section):
        settings.update(config.items(section))
        if "s3" in settings:
            s3 = _nested(settings.pop("s3"))
            if "endpoint_url" in s3:
                settings["endpoint_url"] = s3["endpoint_url"]
            if s3.get("addressing_style") in ("path", "virtual"):
                settings["addressing_style"] = s3["addressing_style"]
    creds = _ini(creds_path)
    if creds is not None and creds.has_section(profile):
        settings.update(creds.items(profile))
    return settings, str(creds_path), str(config_path)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "requester")
    return bool(value)


def _from_sources(explicit: dict[str, Any], env: Mapping[str, str]) -> S3Config:
    profile_name = (
        explicit.get("profile")
        or env.get("AWS_PROFILE")
        or env.get("AWS_DEFAULT_PROFILE")
        or "default"
    )
    prof, creds_path, config_path = _profile_settings(profile_name, env)
    where = f"profile {profile_name!r} of {creds_path} / {config_path}"
    key = secret = token = None
    source = "none"
    if explicit.get("access_key_id") or explicit.get("secret_access_key"):
        key, secret = explicit.get("access_key_id"), explicit.get("secret_access_key")
        token, source = explicit.get("session_token"), "storage_options"
    elif "profile" not in explicit and env.get("AWS_ACCESS_KEY_ID"):
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        token, source = env.get("AWS_SESSION_TOKEN"), "environment (AWS_ACCESS_KEY_ID)"
    elif prof.get("aws_access_key_id"):
        key, secret = prof.get("aws_access_key_id"), prof.get("aws_secret_access_key")
        token, source = prof.get("aws_session_token"), where
    elif ("profile" in explicit or env.get("AWS_PROFILE")) and not prof:
        raise ValueError(
            f"AWS profile {profile_name!r} not found in {creds_path} nor {config_path}"
        )
    endpoint = (
        explicit.get("endpoint_url")
        or env.get("AWS_ENDPOINT_URL_S3")
        or env.get("AWS_ENDPOINT_URL")
        or prof.get("endpoint_url")
    )
    region = (
        explicit.get("region")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or prof.get("region")
        or DEFAULT_REGION
    )
    anonymous = _truthy(explicit.get("anonymous", env.get("AWS_NO_SIGN_REQUEST", False)))
    if not key and not anonymous:
        anonymous, source = True, "none (no credentials found: unsigned requests)"
    if anonymous:
        key = secret = token = None
        if source == "none" or "storage_options" in source:
            source = "none (anonymous: unsigned requests)"
    path_style = explicit.get("path_style")
    if path_style is None and prof.get("addressing_style") in ("path", "virtual"):
        path_style = prof["addressing_style"] == "path"
    return S3Config(
        endpoint_url=str(endpoint).rstrip("/") if endpoint else None,
        region=str(region),
        access_key_id=str(key) if key else None,
        secret_access_key=_secret(secret),
        session_token=_secret(token),
        anonymous=anonymous,
        requester_pays=_truthy(explicit.get("requester_pays", env.get("AWS_REQUEST_PAYER", False))),
        path_style=path_style,
        profile=profile_name,
        credentials_from=source,
    )


def _secret(value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Secret) else Secret(str(value))


@functools.lru_cache(maxsize=8)
def _from_environment(snapshot: tuple[tuple[str, str | None], ...], _stamp: Any) -> S3Config:
    env = {k: v for k, v in snapshot if v is not None}
    return _from_sources({}, env)


def _file_stamp(env: Mapping[str, str]) -> tuple:
    out: list[tuple[int, int] | None] = []
    for path in _files(env):
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def resolve(
    storage_options: StorageOptions | None = None, env: Mapping[str, str] | None = None
) -> S3Config:
    """The S3 configuration: explicit ``storage_options`` first, then the environment (``env``,
    by default this process's), then the profile (``profile`` option, ``AWS_PROFILE`` or
    ``default``) of the shared AWS files.

    Without any credentials requests are unsigned (public buckets). The result of this
    process's environment alone is cached until a variable or a file changes.
    """
    if isinstance(storage_options, S3Config):
        return storage_options
    explicit = _explicit(storage_options or {})
    if explicit or env is not None:
        return _from_sources(explicit, os.environ if env is None else env)
    snapshot = tuple((k, os.environ.get(k)) for k in _ENV_NAMES)
    return _from_environment(snapshot, _file_stamp(os.environ))


# --- what each library gets -----------------------------------------------------------------


def gdal_config(cfg: S3Config) -> dict[str, str]:
    """GDAL configuration options for ``/vsis3/`` (credentials included: hand them to GDAL
    only, e.g. through ``eotoolkit.stores.storage.gdal_env``)."""
    opts = {
        "AWS_REGION": cfg.region,
        "AWS_NO_SIGN_REQUEST": "YES" if cfg.anonymous else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE" if cfg.use_path_style else "TRUE",
    }
    if cfg.endpoint_url:
        parts = urlsplit(cfg.endpoint_url)
        opts["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        opts["AWS_HTTPS"] = "YES" if parts.scheme == "https" else "NO"
    if cfg.requester_pays:
        opts["AWS_REQUEST_PAYER"] = "requester"
    if not cfg.anonymous and cfg.access_key_id:
        opts["AWS_ACCESS_KEY_ID"] = cfg.access_key_id
        opts["AWS_SECRET_ACCESS_KEY"] = _reveal(cfg.secret_access_key) or ""
        # an empty token keeps GDAL from taking a stale one from the process environment
        opts["AWS_SESSION_TOKEN"] = _reveal(cfg.session_token) or ""
    return opts


def fsspec_options(cfg: S3Config) -> dict[str, Any]:
    """``storage_options`` for s3fs (and so for fsspec, xarray and zarr)."""
    opts: dict[str, Any] = {"client_kwargs": {"region_name": cfg.region}}
    if cfg.endpoint_url:
        opts["endpoint_url"] = cfg.endpoint_url
    if cfg.use_path_style:
        opts["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    if cfg.anonymous:
        opts["anon"] = True
    else:
        opts["key"] = cfg.access_key_id
        opts["secret"] = _reveal(cfg.secret_access_key)
        if cfg.session_token:
            opts["token"] = _reveal(cfg.session_token)
    if cfg.requester_pays:
        opts["requester_pays"] = True
    return opts


def rclone_env(cfg: S3Config, name: str = "eo") -> dict[str, str]:
    """An rclone remote ``name:`` as ``RCLONE_CONFIG_<NAME>_*`` environment variables (merge
    them into a subprocess's environment; no configuration file is written). Drop
    ``AWS_CA_BUNDLE`` from that environment when it points at a bundle rclone cannot read."""
    p = f"RCLONE_CONFIG_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}_"
    env = {
        p + "TYPE": "s3",
        p + "PROVIDER": "Other" if cfg.endpoint_url else "AWS",
        p + "ENV_AUTH": "false",
        p + "REGION": cfg.region,
        p + "FORCE_PATH_STYLE": "true" if cfg.use_path_style else "false",
    }
    if cfg.endpoint_url:
        env[p + "ENDPOINT"] = cfg.endpoint_url
    if not cfg.anonymous and cfg.access_key_id:
        env[p + "ACCESS_KEY_ID"] = cfg.access_key_id
        env[p + "SECRET_ACCESS_KEY"] = _reveal(cfg.secret_access_key) or ""
        if cfg.session_token:
            env[p + "SESSION_TOKEN"] = _reveal(cfg.session_token) or ""
    if cfg.requester_pays:
        env[p + "REQUESTER_PAYS"] = "true"
    return env


__all__ = [
    "DEFAULT_REGION",
    "S3Config",
    "Secret",
    "StorageOptions",
    "fsspec_options",
    "gdal_config",
    "mask_key_id",
    "rclone_env",
    "resolve",
]
