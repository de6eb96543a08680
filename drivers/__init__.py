"""Device drivers, one sub-package per device kind. Register a new one in `gateway.registry`."""
