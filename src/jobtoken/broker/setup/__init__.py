"""Setting a broker up: ``preflight`` (what ``broker check`` and ``serve`` report before the
first request) and ``starter`` (``broker init DIR``'s working starter config).
"""
