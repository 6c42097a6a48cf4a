"""The audit trail: ``chain`` (one hash-chained record per decision, and its check),
``view`` (records for people: ``broker audit tail|list``), ``archive`` (retention that keeps
the chain checkable).
"""
