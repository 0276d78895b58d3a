"""The ShadowVault node: everything that runs, in layers that only call downward.

``cli`` -> ``daemon`` -> ``ops`` -> ``p2p`` -> ``repo`` -> ``config`` (import-linter
enforces it). ``repo`` is the encrypted store and knows nothing of the network or the
API; ``p2p`` is the mesh; ``ops`` are the user-level operations (backup, restore, check,
forget, gc, drills); ``daemon`` runs the node (API, scheduler, metrics); ``cli`` parses
arguments and renders results.
"""
