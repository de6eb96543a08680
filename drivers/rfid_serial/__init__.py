"""RFID readers on serial ports: UHF readers of the CF-RU / UHFReader288 family, and 125 kHz
badge readers of the RDM6300 kind."""
