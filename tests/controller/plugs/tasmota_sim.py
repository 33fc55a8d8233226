"""The simulated Tasmota now lives in `fabpass.plugsim.tasmota`."""

from fabpass.plugsim.tasmota import TasmotaSim

__all__ = ["TasmotaSim"]
