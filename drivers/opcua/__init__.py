"""OPC UA client driver (asyncua): subscriptions with monitored items, security, trust list, re-subscribe on reconnect."""
