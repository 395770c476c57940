"""STAC catalogs to analysis-ready, chunked xarray data and Zarr stores."""
