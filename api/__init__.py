"""The lakehouse REST API (FastAPI). ``create_app`` builds it; ``lakehouse serve`` runs it."""

from api.app import create_app

__all__ = ["create_app"]
