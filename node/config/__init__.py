"""The node's configuration: defaults, config.yaml, SHADOWVAULT_* environment, flags.

The lowest layer: it imports nothing else from ``node``. ``load_config`` validates the
whole config once at start-up; the daemon then passes sections down explicitly.

Terms:
    key path: a key's place in the config, dotted (``p2p.listen``, ``backups[0].cron``).
    source: where a value came from: ``default``, the file, ``SHADOWVAULT_...`` or
        ``command line``.
"""

from typing import TYPE_CHECKING

from node._lazy import lazy_getattr

if TYPE_CHECKING:
    from ._addrs import dialable_addrs as dialable_addrs
    from ._addrs import interface_addresses as interface_addresses
    from ._errors import ConfigError as ConfigError
    from ._load import DEFAULT_SOURCE as DEFAULT_SOURCE
    from ._load import ENV_PREFIX as ENV_PREFIX
    from ._load import ENV_SEPARATOR as ENV_SEPARATOR
    from ._load import FLAG_SOURCE as FLAG_SOURCE
    from ._load import LoadedConfig as LoadedConfig
    from ._load import config_keys as config_keys
    from ._load import env_name as env_name
    from ._load import format_path as format_path
    from ._load import load_config as load_config
    from ._load import load_config_text as load_config_text
    from ._model import ApiConfig as ApiConfig
    from ._model import BackupSchedule as BackupSchedule
    from ._model import CheckConfig as CheckConfig
    from ._model import DrillConfig as DrillConfig
    from ._model import GcConfig as GcConfig
    from ._model import LoggingConfig as LoggingConfig
    from ._model import MetricsConfig as MetricsConfig
    from ._model import NodeConfig as NodeConfig
    from ._model import P2PConfig as P2PConfig
    from ._model import PeerConfig as PeerConfig
    from ._model import RetentionConfig as RetentionConfig
    from ._model import SchedulerConfig as SchedulerConfig
    from ._model import StoreConfig as StoreConfig
    from ._units import Duration as Duration
    from ._units import Size as Size

# Loaded on first use (PEP 562), not here: the model (pydantic), the YAML loader and the
# interface lister cost a CLI command about 0.1 s, and most commands never read the
# config; they still name ``ConfigError`` in their error table.
_HOME = {
    "dialable_addrs": "_addrs",
    "interface_addresses": "_addrs",
    "ConfigError": "_errors",
    "DEFAULT_SOURCE": "_load",
    "ENV_PREFIX": "_load",
    "ENV_SEPARATOR": "_load",
    "FLAG_SOURCE": "_load",
    "LoadedConfig": "_load",
    "config_keys": "_load",
    "env_name": "_load",
    "format_path": "_load",
    "load_config": "_load",
    "load_config_text": "_load",
    "ApiConfig": "_model",
    "BackupSchedule": "_model",
    "CheckConfig": "_model",
    "DrillConfig": "_model",
    "GcConfig": "_model",
    "LoggingConfig": "_model",
    "MetricsConfig": "_model",
    "NodeConfig": "_model",
    "P2PConfig": "_model",
    "PeerConfig": "_model",
    "RetentionConfig": "_model",
    "SchedulerConfig": "_model",
    "StoreConfig": "_model",
    "Duration": "_units",
    "Size": "_units",
}


__getattr__ = lazy_getattr(__name__, _HOME, globals())


__all__ = [
    "ApiConfig",
    "BackupSchedule",
    "CheckConfig",
    "ConfigError",
    "DEFAULT_SOURCE",
    "DrillConfig",
    "Duration",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "FLAG_SOURCE",
    "GcConfig",
    "LoadedConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NodeConfig",
    "P2PConfig",
    "PeerConfig",
    "RetentionConfig",
    "SchedulerConfig",
    "Size",
    "StoreConfig",
    "config_keys",
    "dialable_addrs",
    "env_name",
    "format_path",
    "interface_addresses",
    "load_config",
    "load_config_text",
]
