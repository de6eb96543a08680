"""Modbus TCP driver: poll groups of tags over coils, discrete inputs, holding and input registers."""
