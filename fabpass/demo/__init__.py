"""`fabpass demo`: the whole system on one machine, no set-up.

A private broker (Mosquitto if installed, else the embedded amqtt broker), the
server on SQLite running in this process (so the virtual-badges panel can write
to the nodes' stdin), and four simulated node processes (one on a simulated
Shelly plug, `fabpass.plugsim`). Seed data gives a visitor something to click
through: members with and without trainings, expired ones, a trainer, a week of past usage.

- `seed`: the seed data; `processes`: the node processes and their supervision;
- `startup`: the broker, the database, the server thread, the `demo` command.
"""

from __future__ import annotations

from fabpass.demo.processes import DemoError, DemoNode, DemoNodes, node_config
from fabpass.demo.seed import ADMIN_EMAIL, MACHINES, MEMBERS, UNKNOWN_UID, ensure_admin, seed
from fabpass.demo.startup import Demo, demo, start_broker, start_server_parts

__all__ = ["ADMIN_EMAIL", "MACHINES", "MEMBERS", "UNKNOWN_UID", "Demo", "DemoError", "DemoNode",
           "DemoNodes", "demo", "ensure_admin", "node_config", "seed", "start_broker",
           "start_server_parts"]
