"""Runs inside the job. Standard library only: see DESIGN.md."""
