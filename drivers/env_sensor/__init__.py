"""Temperature/humidity sensors without Modbus: serial ASCII line sensors and 1-Wire DS18B20 through sysfs."""
