"""Rule curators' tools behind the CLI: `check` (a rule set's problems and collisions),
`importer` (a CSV or text list to rules), `diff` (two rule sets' decisions compared), `corpus`
(a rule set over a query corpus), `rulebench` (compile time, memory, matching speed) and
`scaffold` (a new deployment's files)."""
