"""Simulated smart plugs: small MQTT clients speaking the devices' documented topics."""
