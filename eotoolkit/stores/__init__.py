"""Where data is stored: S3 settings and errors, Zarr stores and Cloud-Optimized GeoTIFFs."""
