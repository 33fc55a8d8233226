"""Node configuration, provisioning, broker security files and Pi deployment."""

from firmware_config.loader import check_file, load_node_config, validate_text
from firmware_config.node_config import (
    ActivityConfig,
    ConfigError,
    GpioConfig,
    MqttConfig,
    NodeConfig,
    PinConfig,
    ReaderConfig,
    SessionConfig,
    StorageConfig,
)

__all__ = [
    "ActivityConfig", "ConfigError", "GpioConfig", "MqttConfig", "NodeConfig", "PinConfig",
    "ReaderConfig", "SessionConfig", "StorageConfig", "check_file", "load_node_config",
    "validate_text",
]
