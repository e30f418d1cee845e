"""``roboflow ui``: the REST API and web console over the coordination store (see :mod:`.app`).

Nothing is imported here, so that the other commands start without the web framework.
"""
