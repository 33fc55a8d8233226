"""The server's commands, one module per command family (run, db, users, members, trainings,
reports, privacy, provisioning); `fabpass.cli` maps each command name to its module and loads
it only when it runs. Nothing is imported here, so `fabpass node` never loads the server.
"""
