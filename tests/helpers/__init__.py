"""Helpers the tests share (the fixtures are in conftest.py)."""
