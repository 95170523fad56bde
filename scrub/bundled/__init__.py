"""Bundled models and their data generators."""
