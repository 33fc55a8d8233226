"""fabpass."""
