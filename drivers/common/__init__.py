"""Per-tag helpers shared by several drivers: small callables, composed per tag by `rules.chain`."""
