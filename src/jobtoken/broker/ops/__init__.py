"""The ground floor every room may use: ``metrics`` (Prometheus counters and gauges),
``logs`` (structured JSON lines, never a secret), ``rate_limits`` (token buckets per
client address and per repository) and ``strict_toml`` (the strict TOML table reader
of the config file and the provider catalogue).
"""
