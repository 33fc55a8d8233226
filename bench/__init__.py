"""fabpass benchmarks against the goals of issue 9: `python -m bench [names…] [--quick]`."""
