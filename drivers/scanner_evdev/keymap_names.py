"""Layout names, importable without evdev (the config validates against them)."""

LAYOUT_NAMES = ("us", "de", "fr", "gb")
