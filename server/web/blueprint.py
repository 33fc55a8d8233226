"""The web UI blueprint, shared by the page modules of this package."""

from flask import Blueprint

bp = Blueprint("web", __name__)
