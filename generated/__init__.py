# DO NOT EDIT: written by scripts/codegen.py from the ingest annotations in src/ingest/models/.
"""Code generated from the ingest annotations: metadata, ingest types, routing."""
