"""Operations: the command line, the control socket, metrics, logs, reload, systemd notification."""
