"""The simulated plugs now live in `fabpass.plugsim` (the demo runs them too)."""

from fabpass.plugsim.base import PHASES, STEP_S, SimPlug

__all__ = ["PHASES", "STEP_S", "SimPlug"]
