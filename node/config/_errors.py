"""Config errors.

Exception tree::

    ConfigError          the configuration is invalid (the user's to fix): one message per
                         problem, each naming where the value came from, the key path, what
                         was expected and what was found.
"""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid; ``messages`` lists every problem found, in order."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
