"""The capture path: a reading from its driver to a committed row (supervisor, pipeline, stamping, the outbox)."""
