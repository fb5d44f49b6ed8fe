"""lakehouse: keeps Delta Lake and Apache Iceberg tables on S3-compatible storage fast, cheap and compliant.

The library entry point is :class:`lakehouse.core.Lakehouse`; the CLI (``lakehouse``) and the REST API call it.
"""

__version__ = "0.1.0"
