"""Aggregate counts and what researchers read from them.

`counters` declares every counter once; `counting` keeps the tallies and the Prometheus
metrics (`metricfiles` merges the files of ended workers); `ledger` stores hourly buckets in
SQLite or PostgreSQL (`spool` keeps them while the database is away); `variants` chooses the
message variant without state about the searcher; `report` answers which variant works.
Nothing here holds query text, an address or a per-request identifier.
"""
