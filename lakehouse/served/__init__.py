"""Catalog protocols other engines speak, served over lakehouse's own catalog: the Iceberg REST catalog
(:mod:`lakehouse.served.iceberg_rest`). The API mounts them; the catalog database stays the one source of truth."""
