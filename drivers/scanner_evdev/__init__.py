"""Keyboard-wedge barcode scanners read through evdev: keycodes decoded per keyboard layout."""
