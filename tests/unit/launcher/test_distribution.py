"""Which eo-hpc runs here (source tree, wheel file, URL, index) and the wheel install uploads."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest

from eoshared.errors import InstallError
from launcher.config import distribution as d

REPO = Path(__file__).resolve().parents[3]


def fake_dist(tmp_path: Path, direct_url: dict[str, object] | None, version: str = "1.2.3"):  # type: ignore[no-untyped-def]
    info = tmp_path / f"eo_hpc-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: eo-hpc\nVersion: {version}\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(info)


def test_running_from_this_checkout() -> None:
    assert d.source_tree() == REPO
    origin = d.running_origin()
    assert (origin.kind, origin.location) == (d.SOURCE, str(REPO))


def test_index_when_nothing_is_recorded(tmp_path: Path) -> None:
    origin = d.origin_of(fake_dist(tmp_path, None))
    assert (origin.kind, origin.location, origin.version) == (d.INDEX, "eo-hpc==1.2.3", "1.2.3")


def test_wheel_file_still_there(tmp_path: Path) -> None:
    wheel = tmp_path / "eo_hpc-1.2.3-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    digest = hashlib.sha256(b"wheel").hexdigest()
    url = {"url": wheel.as_uri(), "archive_info": {"hash": f"sha256={digest}"}}
    origin = d.origin_of(fake_dist(tmp_path, url))
    assert (origin.kind, origin.location) == (d.WHEEL, str(wheel))
    assert d.project_wheel(tmp_path / "out", origin, run=_no_run) == wheel

    wheel.write_bytes(b"rebuilt since")  # another file under the same name: not the one
    assert d.origin_of(fake_dist(tmp_path / "x", url)).kind == d.INDEX
    wheel.unlink()
    assert d.origin_of(fake_dist(tmp_path / "y", url)).kind == d.INDEX


@pytest.mark.parametrize(
    ("direct", "kind", "location"),
    [
        (
            {"url": "https://github.com/o/eo-hpc", "vcs_info": {"vcs": "git", "commit_id": "ab12"}},
            d.URL,
            "eo-hpc @ git+https://github.com/o/eo-hpc@ab12",
        ),
        (
            {"url": "https://host/eo_hpc-1.2.3.tar.gz", "archive_info": {}},
            d.URL,
            "eo-hpc @ https://host/eo_hpc-1.2.3.tar.gz",
        ),
        ({"url": "file:///gone/tree", "dir_info": {}}, d.INDEX, "eo-hpc==1.2.3"),
    ],
)
def test_other_origins(tmp_path: Path, direct: dict[str, object], kind: str, location: str) -> None:
    origin = d.origin_of(fake_dist(tmp_path, direct))
    assert (origin.kind, origin.location) == (kind, location)


def test_directory_installs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    editable = d.origin_of(
        fake_dist(tmp_path / "a", {"url": tree.as_uri(), "dir_info": {"editable": True}})
    )
    assert (editable.kind, editable.location) == (d.SOURCE, str(tree))
    plain = d.origin_of(fake_dist(tmp_path / "b", {"url": tree.as_uri(), "dir_info": {}}))
    assert (plain.kind, plain.location) == (d.URL, f"eo-hpc @ {tree.as_uri()}")


def test_index_wheel_fetched_here(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def pip(command: list[str], env: dict[str, str]) -> tuple[int, str]:
        calls.append(command)
        assert "build_base" in Path(env["DIST_EXTRA_CONFIG"]).read_text()
        dest = Path(command[command.index("-w") + 1])
        (dest / "eo_hpc-1.2.3-py3-none-any.whl").write_bytes(b"w")
        return 0, ""

    out = tmp_path / "out"
    out.mkdir()
    origin = d.Origin(d.INDEX, "eo-hpc==1.2.3", "1.2.3")
    wheel = d.project_wheel(out, origin, run=pip)
    assert wheel == out / "eo_hpc-1.2.3-py3-none-any.whl"
    assert calls[0][-6:] == ["wheel", "--no-deps", "-q", "-w", str(out), "eo-hpc==1.2.3"]


def test_wrong_or_missing_wheel_refused(tmp_path: Path) -> None:
    def other_version(command: list[str], env: dict[str, str]) -> tuple[int, str]:
        dest = Path(command[command.index("-w") + 1])
        (dest / "eo_hpc-9.9-py3-none-any.whl").write_bytes(b"w")
        return 0, ""

    origin = d.Origin(d.URL, "eo-hpc @ git+https://x@1", "1.2.3")
    (tmp_path / "a").mkdir()
    with pytest.raises(InstallError, match=r"is not version 1\.2\.3"):
        d.project_wheel(tmp_path / "a", origin, run=other_version)
    (tmp_path / "b").mkdir()
    index = d.Origin(d.INDEX, "eo-hpc==1.2.3", "1.2.3")
    with pytest.raises(InstallError, match=r"from the index eo-hpc==1\.2\.3.*No matching dist"):
        d.project_wheel(tmp_path / "b", index, run=lambda *_: (1, "No matching distribution"))


def _no_run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    raise AssertionError(f"nothing to run for a wheel file: {command}")
