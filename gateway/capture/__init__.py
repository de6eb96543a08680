"""The capture path: a reading from its driver to a committed record (supervisor, pipeline, stamping, the capture log and its feeds)."""
