"""The ground floor every room may use: ``metrics`` (Prometheus counters and gauges),
``logs`` (structured JSON lines, never a secret) and ``rate_limits`` (token buckets per
client address and per repository).
"""
