"""eotoolkit.search on static catalogs on disk, and its source errors (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from eotoolkit.errors import (
    EmptySearchError,
    NoItemsError,
    SearchParameterError,
    StacSourceError,
)
from eotoolkit.stac.discovery import is_api_root, search
from tests.stacapi.sample import COMPOSITE_ID, write_sample_catalog
from tests.stacapi.server import free_port


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    write_sample_catalog(root)
    return root


def ids(items: pystac.ItemCollection) -> list[str]:
    return [item.id for item in items]


def test_every_way_to_name_the_catalog(catalog_dir: Path) -> None:
    expected = ids(search(catalog_dir))
    assert len(expected) == 19
    assert ids(search(catalog_dir / "catalog.json")) == expected
    assert ids(search(str(catalog_dir / "catalog.json"))) == expected
    assert ids(search(f"file://{catalog_dir / 'catalog.json'}")) == expected


def test_collection_as_root(catalog_dir: Path) -> None:
    found = search(catalog_dir / "sample-b", datetime="2024-01-31")
    assert ids(found) == [COMPOSITE_ID]
    assert (
        search(catalog_dir / "sample-b" / "collection.json", max_items=3).items[0].collection_id
        == "sample-b"
    )


def test_collections_filter_skips_other_collections(catalog_dir: Path) -> None:
    found = search(catalog_dir, collections=["sample-b"])
    assert len(found) == 7
    assert {item.collection_id for item in found} == {"sample-b"}


def test_ids_keep_only_those_items(catalog_dir: Path) -> None:
    wanted = ["T32TLR-20240105", COMPOSITE_ID, "T32TMR-20240224"]
    assert sorted(ids(search(catalog_dir, ids=wanted))) == sorted(wanted)
    assert ids(search(catalog_dir, ids=",".join(wanted))) == ids(search(catalog_dir, ids=wanted))
    # ids combine with the other filters
    assert ids(search(catalog_dir, ids=wanted, collections=["sample-a"])) == [
        "T32TMR-20240224",
        "T32TLR-20240105",
    ]
    assert ids(search(catalog_dir, ids=wanted, datetime="2024-01-31")) == [COMPOSITE_ID]


def test_ids_matching_nothing_or_empty(catalog_dir: Path) -> None:
    with pytest.raises(EmptySearchError, match=r"ids=\['no-such-item'\]"):
        search(catalog_dir, ids=["no-such-item"])
    with pytest.raises(SearchParameterError, match="ids"):
        search(catalog_dir, ids=[])


def test_max_items_keeps_the_newest(catalog_dir: Path) -> None:
    found = search(catalog_dir, max_items=3)
    assert ids(found) == ["T32TLS-20240224", "T32TMR-20240224", "T32TLR-20240224"]


def test_item_collection_file(catalog_dir: Path, tmp_path: Path) -> None:
    items = search(catalog_dir, collections=["sample-a"])
    path = tmp_path / "items.json"
    items.save_object(dest_href=str(path))
    found = search(path, query={"eo:cloud_cover": {"lt": 30}})
    assert ids(found) == ids(
        search(catalog_dir, collections="sample-a", query={"eo:cloud_cover": {"lt": 30}})
    )


def test_empty_result_names_filters(catalog_dir: Path) -> None:
    with pytest.raises(EmptySearchError) as info:
        search(catalog_dir, bbox=[100, 0, 101, 1], filter="platform = 'landsat-9'")
    message = str(info.value)
    assert "bbox=[100.0, 0.0, 101.0, 1.0]" in message
    assert "platform = 'landsat-9'" in message
    assert "widen the filters" in message
    assert isinstance(info.value, NoItemsError)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(StacSourceError, match="does not exist"):
        search(tmp_path / "nope.json")


def test_directory_without_catalog(tmp_path: Path) -> None:
    with pytest.raises(StacSourceError, match=r"without catalog\.json"):
        search(tmp_path)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("<html></html>")
    with pytest.raises(StacSourceError, match="not JSON"):
        search(path)


def test_json_but_not_stac(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"type": "Feature", "properties": {}}))
    with pytest.raises(StacSourceError, match="not a STAC catalog"):
        search(path)


def test_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/stac"
    with pytest.raises(StacSourceError) as info:
        search(url)
    assert url in str(info.value) and "connection refused" in str(info.value)


def test_api_root_detection() -> None:
    assert is_api_root({"conformsTo": []})
    assert is_api_root({"links": [{"rel": "search", "href": "/search"}]})
    assert not is_api_root({"type": "Catalog", "links": [{"rel": "child", "href": "x"}]})
