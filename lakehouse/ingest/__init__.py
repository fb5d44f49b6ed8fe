"""Ingestion: sources (Kafka, files, HTTP records) -> parsing with a quarantine -> exactly-once micro-batches."""
