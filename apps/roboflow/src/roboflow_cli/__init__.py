"""The roboflow command line."""
