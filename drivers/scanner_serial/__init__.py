"""Serial barcode scanners (RS-232, USB-CDC): framing, raw bytes kept, host-ACK good/bad feedback."""
