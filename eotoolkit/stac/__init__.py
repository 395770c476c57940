"""STAC: search of STAC APIs and static catalogs, and the static catalogs eotoolkit writes."""
