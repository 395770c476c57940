"""Object storage: one S3 configuration for GDAL, fsspec/s3fs, rclone and pystac.

Users set credentials and the endpoint once, where they keep them: the standard AWS
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``), the profiles of
``~/.aws/credentials`` and ``~/.aws/config``, or an explicit ``storage_options=`` mapping
(s3fs's keys: ``key``, ``secret``, ``token``, ``endpoint_url``, ``region``/``client_kwargs``,
``anon``, ``requester_pays``, ``profile``). :func:`resolve` turns them into one
:class:`S3Config`; :func:`gdal_config`, :func:`fsspec_options` and :func:`rclone_env` give the
same settings to GDAL's ``/vsis3/``, to s3fs (Zarr, catalogs, copies) and to rclone. That
mapping lives in :mod:`eoshared.s3_settings` (the launcher uses it too) and is importable from
here; this module adds what needs GDAL, botocore, fsspec or pystac: ``rasterio.Env`` sessions,
URLs, S3 errors naming bucket and key, fsspec options and pystac I/O.

Secrets (the secret key and the session token) are held in :class:`Secret`, whose ``repr`` and
``str`` are ``***``; the error messages built here never contain them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eoshared.s3_settings import (
    S3Config,
    Secret,
    StorageOptions,
    _reveal,
    fsspec_options,
    gdal_config,
    mask_key_id,
    rclone_env,
    resolve,
)

from ..errors import (
    StorageAccessError,
    StorageError,
    StorageNotFoundError,
    StorageUnreachableError,
)

#: Query parameters of signed URLs that carry credentials or signatures.
SIGNED_QUERY = re.compile(
    r"^(x-amz-(signature|credential|security-token)|signature|sig|token|awsaccesskeyid|"
    r"x-goog-(signature|credential)|se|sp|sv|skoid|sktid|skt|ske|sks|skv)$",
    re.IGNORECASE,
)


def _rasterio_session(cfg: S3Config) -> Any:
    from rasterio.session import Session

    class _S3Session(Session):
        """Hands the configuration's GDAL options to ``rasterio.Env``."""

        def __init__(self, config: S3Config) -> None:
            self.config = config

        @classmethod
        def hascreds(cls, config: Any) -> bool:
            return True

        def get_credential_options(self) -> dict[str, str]:
            return gdal_config(self.config)

        def __repr__(self) -> str:
            return f"S3Session({self.config!r})"

    return _S3Session(cfg)


def gdal_env(cfg: S3Config, **options: Any) -> Any:
    """A ``rasterio.Env`` with ``options`` and the configuration's ``/vsis3/`` settings."""
    import rasterio

    return rasterio.Env(session=_rasterio_session(cfg), **options)


# --- URLs -----------------------------------------------------------------------------------


def is_s3(url: Any) -> bool:
    """Whether ``url`` is an ``s3://`` URL or a ``/vsis3/`` path."""
    return isinstance(url, str) and url.startswith(("s3://", "/vsis3/"))


def split(url: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` URL or ``/vsis3/`` path."""
    rest = url.split("://", 1)[1] if url.startswith("s3://") else url[len("/vsis3/") :]
    bucket, _, key = rest.partition("/")
    return bucket, key


def redact(url: str) -> str:
    """``url`` with the signature and credential parameters of its query replaced by ``***``
    (presigned URLs carry them)."""
    if "?" not in url or "://" not in url:
        return url
    parts = urlsplit(url)
    query = [(k, "***" if SIGNED_QUERY.match(k) else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*/")))


def endpoint_to_s3(href: str, cfg: S3Config) -> str | None:
    """``s3://bucket/key`` for an http(s) URL on the configured (path-style) endpoint without a
    query, so that it is read signed; None for any other href."""
    if not cfg.endpoint_url or not cfg.use_path_style or "?" in href:
        return None
    base = cfg.endpoint_url.rstrip("/") + "/"
    if href.startswith(base) and len(href) > len(base):
        return "s3://" + href[len(base) :]
    return None


# --- errors ---------------------------------------------------------------------------------


def _client(cfg: S3Config) -> Any:
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    session = botocore.session.Session()
    # settings come from cfg only: a missing AWS_PROFILE must not break the diagnosis
    session.set_config_variable("profile", None)
    config = Config(
        signature_version=UNSIGNED if cfg.anonymous else None,
        s3={"addressing_style": "path" if cfg.use_path_style else "auto"},
        connect_timeout=5,
        read_timeout=15,
        retries={"max_attempts": 1, "mode": "standard"},
    )
    return session.create_client(
        "s3",
        region_name=cfg.region,
        endpoint_url=cfg.endpoint_url,
        aws_access_key_id=None if cfg.anonymous else cfg.access_key_id,
        aws_secret_access_key=None if cfg.anonymous else _reveal(cfg.secret_access_key),
        aws_session_token=None if cfg.anonymous else _reveal(cfg.session_token),
        config=config,
    )


def _who(cfg: S3Config) -> str:
    if cfg.anonymous:
        return f"an unsigned request (credentials: {cfg.credentials_from})"
    return f"access key id {mask_key_id(cfg.access_key_id)} from {cfg.credentials_from}"


def describe_code(
    code: str, cfg: S3Config, bucket: str, key: str, *, action: str = "read", vanished: bool = False
) -> StorageError:
    """The error for an S3 error ``code`` on ``s3://bucket/key``."""
    url = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    at = f"at {cfg.endpoint_host}"
    if code in ("NoSuchBucket",):
        return StorageNotFoundError(
            f"bucket {bucket!r} does not exist {at} (while trying to {action} {url}); check the "
            "bucket name and the endpoint (AWS_ENDPOINT_URL / endpoint_url)",
            bucket=bucket,
            key=key,
        )
    if code in ("NoSuchKey", "404", "NotFound"):
        if vanished:
            msg = (
                f"object {url} vanished {at}: it was readable earlier in this run and has "
                "been deleted or replaced since"
            )
        else:
            msg = f"object {url} does not exist {at} (bucket {bucket!r}, key {key!r})"
        return StorageNotFoundError(msg, bucket=bucket, key=key)
    if code in ("InvalidAccessKeyId",):
        return StorageAccessError(
            f"access denied to {url} {at}: the endpoint does not know {_who(cfg)} (wrong access "
            "key id); check AWS_ACCESS_KEY_ID, the profile or storage_options",
            bucket=bucket,
            key=key,
            reason="credentials",
        )
    if code in ("SignatureDoesNotMatch",):
        return StorageAccessError(
            f"access denied to {url} {at}: the secret key does not match {_who(cfg)} (wrong "
            "secret access key); check AWS_SECRET_ACCESS_KEY, the profile or storage_options",
            bucket=bucket,
            key=key,
            reason="credentials",
        )
    if code in ("ExpiredToken", "TokenRefreshRequired", "InvalidToken", "RequestExpired"):
        return StorageAccessError(
            f"access denied to {url} {at}: the session token of {_who(cfg)} is expired or "
            "invalid; renew the credentials",
            bucket=bucket,
            key=key,
            reason="credentials",
        )
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        if cfg.anonymous:
            why = (
                f"the bucket does not allow {_who(cfg)}; set credentials (AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or storage_options)"
            )
        else:
            why = (
                f"the credentials ({_who(cfg)}) are valid but lack the permission to {action} "
                f"objects in bucket {bucket!r}"
            )
            if not cfg.requester_pays:
                why += " (for a requester-pays bucket pass requester_pays=True)"
        return StorageAccessError(
            f"access denied to {url} {at}: {why}",
            bucket=bucket,
            key=key,
            reason="permission",
        )
    return StorageError(
        f"S3 error {code} for {url} {at} (while trying to {action})", bucket=bucket, key=key
    )


def unreachable(cfg: S3Config, bucket: str, key: str, why: str) -> StorageUnreachableError:
    """The error for an endpoint that does not answer."""
    url = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    return StorageUnreachableError(
        f"cannot reach the S3 endpoint {cfg.endpoint_host} ({why}) for {url}; check the "
        "endpoint (AWS_ENDPOINT_URL / endpoint_url) and that the server is running and "
        "reachable from this machine",
        bucket=bucket,
        key=key,
        endpoint=cfg.endpoint_host,
    )


def _connection_reason(exc: BaseException) -> str:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        kwargs = getattr(cur, "kwargs", None)
        nested = kwargs.get("error") if isinstance(kwargs, dict) else None
        cur = nested if isinstance(nested, BaseException) else (cur.__cause__ or cur.__context__)
    text = " ".join(f"{type(e).__name__} {e}" for e in seen).lower()
    if "refused" in text:
        return "connection refused"
    if "timed out" in text or "timeout" in text:
        return "no answer: timeout"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return type(exc).__name__


def diagnose(
    cfg: S3Config, url: str, *, action: str = "read", vanished: bool = False
) -> StorageError | None:
    """Ask the endpoint about ``url`` (an object, or a prefix when it ends with ``/`` or
    ``action`` is not "read") and return the error explaining why it cannot be used, or None
    when it can be read."""
    try:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
        )
    except ImportError:  # without the s3 extra there is nobody to ask
        return None

    bucket, key = split(url)
    try:
        client = _client(cfg)
        if key and not key.endswith("/") and action == "read":
            client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
        else:
            client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(
            err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
        return describe_code(code, cfg, bucket, key, action=action, vanished=vanished)
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        return unreachable(cfg, bucket, key, _connection_reason(exc))
    except BotoCoreError as exc:
        return StorageError(
            f"S3 request for s3://{bucket}/{key} at {cfg.endpoint_host} failed: "
            f"{cfg.scrub(str(exc))}",
            bucket=bucket,
            key=key,
        )
    return None


def explain(exc: BaseException, url: str, cfg: S3Config, *, action: str) -> StorageError | None:
    """A :class:`StorageError` naming bucket and key for a failure of ``action`` on ``url``
    (asking the endpoint why); None when the endpoint reports nothing wrong."""
    if isinstance(exc, StorageError):
        return exc
    found = diagnose(cfg, url, action=action)
    if found is None and isinstance(exc, PermissionError):
        bucket, key = split(url)
        return describe_code("AccessDenied", cfg, bucket, key, action=action)
    return found


@contextmanager
def storage_errors(
    url: Any, storage_options: StorageOptions | None, action: str, *, prefix: bool = False
) -> Iterator[None]:
    """Turn I/O failures on an ``s3://`` ``url`` (an object, or with ``prefix`` a "directory"
    such as a Zarr store) into :class:`StorageError` naming bucket and key (other URLs and
    other exceptions pass through)."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        if not is_s3(str(url)) or not (isinstance(exc, OSError) or _is_io_error(exc)):
            raise
        cfg = resolve(storage_options)
        target = str(url).rstrip("/") + "/" if prefix else str(url)
        better = explain(exc, target, cfg, action=action)
        if better is None:
            raise
        raise better from None


def _is_io_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("botocore", "aiobotocore", "s3fs"))


F = TypeVar("F", bound=Callable[..., Any])


def with_storage_errors(arg: str, action: str, *, prefix: bool = False) -> Callable[[F], F]:
    """Decorate a function whose argument ``arg`` is a destination/source URL so that I/O
    failures on ``s3://`` URLs raise :class:`StorageError` (its ``storage_options`` argument,
    when given, says which credentials were used)."""
    import inspect

    def wrap(func: F) -> F:
        sig = inspect.signature(func)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = sig.bind_partial(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)
            url = bound.arguments.get(arg)
            if not is_s3(str(url)):
                return func(*args, **kwargs)
            try:
                opts = bound.arguments.get("storage_options")
                with storage_errors(url, opts, action, prefix=prefix):
                    return func(*args, **kwargs)
            except StorageError as exc:
                raise exc.with_traceback(None) from None

        return run  # type: ignore[return-value]

    return wrap


# --- fsspec and pystac ----------------------------------------------------------------------


def fsspec_kwargs(url: str, storage_options: StorageOptions | None) -> dict[str, Any]:
    """fsspec keyword arguments for ``url``: the resolved S3 options for ``s3://`` URLs, the
    given mapping unchanged for other URLs."""
    if url.startswith("s3://"):
        return fsspec_options(resolve(storage_options))
    if isinstance(storage_options, S3Config):
        return {}
    return dict(storage_options or {})


class PrivateOptions:
    """fsspec options that travel through task graphs without showing their secrets: equal and
    hashable by value, ``repr`` masked."""

    __slots__ = ("_key", "options")

    def __init__(self, options: Mapping[str, Any] | None) -> None:
        self.options = dict(options or {})
        self._key = repr(sorted((k, repr(v)) for k, v in self.options.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateOptions) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"PrivateOptions(<{len(self.options)} options>)"

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return (PrivateOptions, (self.options,))

    def __dask_tokenize__(self) -> str:
        return hashlib.sha256(self._key.encode()).hexdigest()


def stac_io(storage_options: StorageOptions | None = None) -> Any:
    """A pystac ``StacIO`` reading and writing ``s3://`` (and any fsspec URL) with the
    resolved options, local paths and http(s) as pystac does."""
    from pystac.stac_io import DefaultStacIO

    class FsspecStacIO(DefaultStacIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            href = str(source if isinstance(source, str) else getattr(source, "href", source))
            if _fsspec_url(href):
                import fsspec

                opts = fsspec_kwargs(href, storage_options)
                with (
                    storage_errors(href, storage_options, "read"),
                    fsspec.open(href, "rt", **opts) as f,
                ):
                    return str(f.read())
            return str(super().read_text(source, *args, **kwargs))

        def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
            href = str(dest if isinstance(dest, str) else getattr(dest, "href", dest))
            if _fsspec_url(href):
                import fsspec

                opts = fsspec_kwargs(href, storage_options)
                with (
                    storage_errors(href, storage_options, "write"),
                    fsspec.open(href, "wt", **opts) as f,
                ):
                    f.write(txt)
                return
            super().write_text(dest, txt, *args, **kwargs)

    return FsspecStacIO()


def _fsspec_url(href: str) -> bool:
    scheme = href.split("://", 1)[0] if "://" in href else ""
    return scheme not in ("", "file", "http", "https")


__all__ = [
    "PrivateOptions",
    "S3Config",
    "Secret",
    "StorageOptions",
    "diagnose",
    "endpoint_to_s3",
    "fsspec_kwargs",
    "fsspec_options",
    "gdal_config",
    "gdal_env",
    "is_s3",
    "rclone_env",
    "redact",
    "resolve",
    "split",
    "stac_io",
]
