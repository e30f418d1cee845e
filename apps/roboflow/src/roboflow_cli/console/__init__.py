"""``roboflow ui``: the REST API and web console over the coordination store (see :mod:`.app`)."""

from roboflow_cli.console.app import create_app

__all__ = ["create_app"]
