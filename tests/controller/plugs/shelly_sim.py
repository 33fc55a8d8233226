"""The simulated Shelly now lives in `fabpass.plugsim.shelly`."""

from fabpass.plugsim.shelly import ShellySim

__all__ = ["ShellySim"]
