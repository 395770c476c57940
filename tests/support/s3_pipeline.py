"""A staged pipeline whose data is in the S3 rig (Ceph RGW): six real COGs, one corrupt, and
a process command that reads each with rasterio and writes it doubled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.transform import from_origin

from tests.s3.rig import RigInfo, s3_client

SCENES = [f"scene{i}.tif" for i in range(1, 7)]
CORRUPT = "scene4.tif"
#: Read the scene with rasterio (every block, so a damaged tile fails) and write it doubled.
#: No braces in the Python code: the command is a template of {scene}, {input}, {output}.
PROCESS = (
    'python -c "import sys, rasterio; src = rasterio.open(sys.argv[1]); data = src.read(); '
    "profile = src.profile; profile.update(driver='GTiff'); "
    "dst = rasterio.open(sys.argv[2], 'w', **profile); dst.write(data * 2); dst.close(); "
    "print('read', sys.argv[1], data.shape)\" {input}/{scene} {output}/double.tif"
)


def cog_bytes(tmp_path: Path, scene: str, value: int) -> bytes:
    """A small real COG (two bands, 256 x 256, 128-pixel tiles) whose pixels are ``value``."""
    path = tmp_path / f"cog-{scene}"
    data = np.full((2, 256, 256), value, dtype="uint16")
    data[:, ::7, :] += 1
    profile = {
        "driver": "COG", "width": 256, "height": 256, "count": 2, "dtype": "uint16",
        "crs": "EPSG:32631", "transform": from_origin(600000, 5800000, 20, 20),
        "blocksize": 128, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path.read_bytes()


def corrupt(path: Path) -> bytes:
    """The COG at ``path`` with its tile data garbled from the first tile on: the header
    opens, the pixels do not decode."""
    with rasterio.open(path) as src:
        first = min(
            int(src.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=b))
            for b in src.indexes
            for i in range(2)
            for j in range(2)
        )
    good = path.read_bytes()
    return good[:first] + bytes((b * 37 + 11) % 256 for b in good[first:])


def fresh_prefix(s3_rig: RigInfo) -> Iterator[str]:
    """A fresh key prefix in the rig's bucket, emptied afterwards (a fixture's body)."""
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    yield name
    s3 = s3_client(s3_rig)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=s3_rig.bucket, Prefix=name)
    for page in pages:
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=s3_rig.bucket, Key=obj["Key"])


def upload_scenes(s3_rig: RigInfo, prefix: str, tmp_path: Path) -> dict[str, bytes]:
    """Upload the six scenes under ``prefix/in/`` (the corrupt one garbled); return the good
    bytes of each."""
    s3, bucket = s3_client(s3_rig), s3_rig.bucket
    good = {scene: cog_bytes(tmp_path, scene, 100 * (i + 1)) for i, scene in enumerate(SCENES)}
    for scene, body in good.items():
        data = corrupt(tmp_path / f"cog-{scene}") if scene == CORRUPT else body
        s3.put_object(Bucket=bucket, Key=f"{prefix}/in/{scene}", Body=data)
    return good


def output_keys(s3_rig: RigInfo, prefix: str) -> list[str]:
    """The keys under ``prefix/out/``, sorted."""
    s3 = s3_client(s3_rig)
    listed = s3.list_objects_v2(Bucket=s3_rig.bucket, Prefix=f"{prefix}/out/").get("Contents", [])
    return sorted(obj["Key"] for obj in listed)


def pipeline_file(tmp_path: Path, s3: RigInfo, name: str, source: str, dest: str) -> Path:
    doc = {
        "name": name,
        "scenes": SCENES,
        "stage_in": {"from": f"src:{s3.bucket}/{source}"},
        "process": {"command": PROCESS, "retries": 1},
        "stage_out": {"to": f"dst:{s3.bucket}/{dest}"},
        "remotes": {
            "src": {"type": "s3", "provider": "Ceph", "credentials": "aws"},
            "dst": {"type": "s3", "provider": "Ceph", "credentials": "aws"},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
