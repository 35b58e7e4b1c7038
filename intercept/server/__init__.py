"""`intercept serve`: the aiohttp server and its operation.

`serve` runs one process or, with `--workers N`, `supervisor` forks workers that share the
listeners `listeners` holds; `connections` bounds client connections, `admin` is the admin
listener, `accesslog` the access log without queries. The documented `intercept.serve`
re-exports `build_engine`.
"""
