"""Scan classification, decoding and the station rules that turn a scan into a verdict.

Invariants:
- Decoding never raises on bad input and never drops anything: raw bytes stay with the record, every
  problem found is listed in `errors` (with a parallel machine-readable `error_codes`).
- Classification order is fixed: AIM identifier → configured patterns → GS1 (biip) → EPC → unknown.
- `ScanRules.evaluate` does no I/O: lists (BOM, blocked lots) are loaded when the rules are built or
  come with the context from the MES.
"""
