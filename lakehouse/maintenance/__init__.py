"""Maintenance jobs: planned, recorded in the job history, safe against concurrent writers."""
