"""The server's MQTT side: the connection, the ingest of node events, the access-list publisher.

- `link`: the one MQTT connection (paho-mqtt 2), manual acknowledgements;
- `ingest`: batches of node events and statuses stored exactly once, then acked;
- `handlers`: what each stored event does to the records (calling services for the rules);
- `publisher`: access lists and commands sent to the nodes whose records changed.
"""
