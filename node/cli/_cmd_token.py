"""`shadowvault token create|list|revoke`: API tokens with roles."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from node.repo import resolve_home

from ._common import HomeOpt, JsonOpt, print_json
from ._errors import EXIT_USAGE, CliError, user_errors
from ._remote import call_daemon

# The token file helpers are light; node.daemon's package import pulls in the web stack.
ROLES = ("admin", "operator", "viewer")

token_app = typer.Typer(help="API tokens: admin, operator or viewer.", no_args_is_help=True)


@token_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[
        str, typer.Option("--name", help="What the token is for (letters, digits, ._-).")
    ],
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a token; it is printed once and only its hash is kept.

    Roles: viewer reads status, snapshots and listings; operator also runs backups,
    restores, checks and reads file contents; admin also manages tokens and the node.
    """
    with user_errors():
        if role not in ROLES:
            raise CliError(f"--role must be one of {', '.join(ROLES)}, got {role!r}", EXIT_USAGE)
        made: dict[str, Any] | None = call_daemon(
            resolve_home(home), "POST", "/api/v1/tokens", json={"name": name, "role": role}
        )
        if made is None:
            paths = resolve_home(home)
            paths.require_node()
            from node.daemon import create_token
            from node.repo import audit_without_unlock

            with audit_without_unlock(paths) as audit:
                try:
                    token = create_token(paths.root, name, role)
                except ValueError as exc:
                    raise CliError(str(exc), EXIT_USAGE) from None
                audit("token_create", {"name": name, "role": role, "by": "cli"})
            made = {"name": name, "role": role, "token": token}
        if json_out:
            print_json(made)
        else:
            print(made["token"])


@token_app.command("list")
def list_(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Names and roles of the tokens (the tokens themselves are never shown again)."""
    with user_errors():
        tokens: list[dict[str, str]] | None = call_daemon(
            resolve_home(home), "GET", "/api/v1/tokens"
        )
        if tokens is None:
            paths = resolve_home(home)
            paths.require_node()
            from node.daemon import list_tokens

            tokens = [{"name": t.name, "role": t.role} for t in list_tokens(paths.root)]
        if json_out:
            print_json(tokens)
            return
        for t in tokens:
            print(f"{t['name']:<24} {t['role']}")


@token_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    home: HomeOpt = None,
) -> None:
    """Revoke every token with this name (takes effect at the daemon's next request)."""
    with user_errors():
        if call_daemon(resolve_home(home), "DELETE", f"/api/v1/tokens/{name}") is None:
            paths = resolve_home(home)
            paths.require_node()
            from node.daemon import revoke_token
            from node.repo import audit_without_unlock

            with audit_without_unlock(paths) as audit:
                try:
                    removed = revoke_token(paths.root, name)
                except ValueError as exc:
                    raise CliError(str(exc), EXIT_USAGE) from None
                if removed:
                    audit("token_revoke", {"name": name, "count": removed, "by": "cli"})
            if not removed:
                raise CliError(f"no token named {name!r}")
        print(f"revoked {name}")
