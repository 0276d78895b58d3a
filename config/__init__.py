"""The documented default node configuration, embedded in the package.

``node.example.yaml`` documents every key; ``shadowvault init`` writes it into a new
node home as ``config.yaml``.
"""

from importlib.resources import files


def example_config_text() -> str:
    """The text of ``config/node.example.yaml``."""
    return files(__name__).joinpath("node.example.yaml").read_text(encoding="utf-8")
