"""The node's configuration: defaults, config.yaml, SHADOWVAULT_* environment, flags.

The lowest layer: it imports nothing else from ``node``.
"""
