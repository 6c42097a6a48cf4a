"""Runs inside the job. Standard library only: see docs/architecture.md, "Two halves"."""
