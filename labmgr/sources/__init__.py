"""Backups that already exist, read where they are: name templates, locations (a directory or an
S3-compatible bucket), ``dumps index`` and ``dumps check-storage`` (docs/sources.md)."""
