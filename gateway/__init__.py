"""Shop-floor edge gateway: capture, stamp with station context, buffer durably, forward over MQTT."""

__version__ = "0.1.0"
