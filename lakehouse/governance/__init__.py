"""Catalog store, and the governance records kept in it (job history; lineage, PII and audit later)."""
