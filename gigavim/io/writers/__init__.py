"""Output writers: OME-Zarr labels, Cloud-Optimized GeoTIFF, GeoJSON polygons."""
