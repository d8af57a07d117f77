"""bambupi's configuration: declared once, read with tomlkit, every problem naming its key path.

- :mod:`~bambupi.config.model`: the frozen dataclasses the rest of bambupi imports, defaults in their fields.
- :mod:`~bambupi.config.validators`: the ``valid_*`` checks behind every key.
- :mod:`~bambupi.config.schema`: which table fills which dataclass and how each key is checked.
- :mod:`~bambupi.config.parse`: TOML in, a ``Config`` and every problem (key path and line) out.
- :mod:`~bambupi.config.file`: writing the file back (comments kept, atomic, serialized), the settings page's view.
- :mod:`~bambupi.config.paths`: where the config, the database and the certificate pins live.

The names below are the ones the rest of bambupi imports from ``bambupi.config``.
"""

from bambupi.config.model import (
    DEFAULT_STORAGE_PATH,
    HMS_LANGUAGES,
    AlertsConfig,
    BridgeConfig,
    CameraConfig,
    Config,
    DiscoveryConfig,
    FacadeConfig,
    FilamentConfig,
    HistoryConfig,
    NotifyConfig,
    PanelConfig,
    PlugConfig,
    PowerConfig,
    PrinterConfig,
    StorageConfig,
    SystemConfig,
    WebConfig,
    config_secrets,
)
from bambupi.config.parse import check_config, cli_check_config, key_lines, load_config, parse_config
from bambupi.config.paths import (
    DEFAULT_CONFIG_PATH,
    EXAMPLE_CONFIG_PATH,
    SETUP_ERRORS_FILE_NAME,
    pins_file,
    pins_path,
    resolve_storage_path,
    user_data_dir,
)
from bambupi.config.problems import ConfigError, Problem, errors
from bambupi.config.schema import SCHEMA, SECRET_KEYS, Option, Section
from bambupi.config.validators import Warned, valid_model

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STORAGE_PATH",
    "EXAMPLE_CONFIG_PATH",
    "HMS_LANGUAGES",
    "SCHEMA",
    "SECRET_KEYS",
    "SETUP_ERRORS_FILE_NAME",
    "AlertsConfig",
    "BridgeConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "DiscoveryConfig",
    "FacadeConfig",
    "FilamentConfig",
    "HistoryConfig",
    "NotifyConfig",
    "Option",
    "PanelConfig",
    "PlugConfig",
    "PowerConfig",
    "PrinterConfig",
    "Problem",
    "Section",
    "StorageConfig",
    "SystemConfig",
    "Warned",
    "WebConfig",
    "check_config",
    "cli_check_config",
    "config_secrets",
    "errors",
    "key_lines",
    "load_config",
    "parse_config",
    "pins_file",
    "pins_path",
    "resolve_storage_path",
    "user_data_dir",
    "valid_model",
]
