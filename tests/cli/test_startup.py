"""What a CLI command loads before it does anything.

Every command pays for every module the CLI imports at start-up. The mesh (libp2p,
about 1 s and 50 MB), the daemon (FastAPI, hypercorn) and trio belong to the commands
that use them: ``node run``, ``recover`` and the daemon's own process. ``node.p2p``
loads its modules on first use, so forget and gc read other owners' retention records
(``node.p2p._retain``) without the host.
"""

from __future__ import annotations

import json
import subprocess
import sys

_HEAVY = ("libp2p", "fastapi", "hypercorn", "starlette", "trio", "node.daemon")


def test_the_cli_starts_without_the_mesh_or_the_daemon() -> None:
    probe = "import json, sys, node.cli\nprint(json.dumps(sorted(m for m in sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    heavy = sorted({h for h in _HEAVY for m in loaded if m == h or m.startswith(h + ".")})
    assert heavy == [], f"the CLI imports at start-up: {heavy}"
