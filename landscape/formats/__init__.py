"""Readers for other tools' file formats (one module per format)."""
