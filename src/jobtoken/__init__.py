"""jobtoken: short-lived, job-scoped connector tokens for GitHub Actions jobs."""

__version__ = "0.1.0"
