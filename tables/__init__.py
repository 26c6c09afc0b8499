"""Changelog-backed tables of the worker: batch state, request outcomes, their projection and views."""
