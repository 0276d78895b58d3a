"""The ShadowVault node: everything that runs, in layers that only call downward.

``cli`` -> ``ops`` -> ``repo``. ``repo`` is the encrypted store and knows nothing of the
network or the API; ``ops`` are the user-level operations (init, backup, check, ...);
``cli`` parses arguments and renders results.
"""
