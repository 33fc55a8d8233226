"""Simulated smart plugs: small MQTT clients speaking the devices' documented topics.

Shipped (not only in tests) so that `fabpass demo` can run a Shelly plug whose power the
virtual badges panel drives; the node tests use the same classes (tests/controller/plugs).
"""

from fabpass.plugsim.base import PHASES, SimPlug
from fabpass.plugsim.shelly import ShellySim
from fabpass.plugsim.tasmota import TasmotaSim

__all__ = ["PHASES", "ShellySim", "SimPlug", "TasmotaSim"]
