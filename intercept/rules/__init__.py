"""The rule engine: rule files in, one decision per text out.

`fold` (characters) -> `normalize` (readings) -> `masks` (masked letters) -> `ruleset` (one
Aho-Corasick pass, run lengths verified against `lexicon`) or `sealedset` (the same over keyed
hashes). Rules are read by `rulefile` (`ruleyaml` parses with locations, `ruleschema` checks,
`rulespec` holds them); `seal` writes sealed bundles. Nothing here imports a front door, the
server or the research side.
"""
