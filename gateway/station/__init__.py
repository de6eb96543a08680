"""The station: its context (work order, lot, operators), the commands that set it, and the scan rules."""
