"""The fabpass server: Flask app factory, models, ingest, access-list publisher, UI and API."""

from server.app import create_app

__all__ = ["create_app"]
