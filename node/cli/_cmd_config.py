"""`shadowvault config show` and `shadowvault config validate`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from node.config import load_config
from node.repo import resolve_home

from ._common import HomeOpt, JsonOpt, print_json
from ._errors import user_errors

config_app = typer.Typer(
    help="Show and check the node configuration (config.yaml, SHADOWVAULT_* variables).",
    no_args_is_help=True,
)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


@config_app.command("show")
def show(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Print the effective configuration and where each value came from.

    Precedence: defaults < <home>/config.yaml < SHADOWVAULT_* environment. Secrets are
    masked.

    Exit codes: 0 shown; 1 the configuration is invalid (one message per problem).
    """
    with user_errors():
        paths = resolve_home(home)
        loaded = load_config(paths.config, env=os.environ)
        rows = loaded.flat(masked=True)
        if json_out:
            print_json(
                {
                    "file": str(paths.config),
                    "config": loaded.config.model_dump(mode="json"),
                    "sources": {key: source for key, _, source in rows},
                }
            )
            return
        exists = "" if paths.config.exists() else " (absent: defaults)"
        print(f"# {paths.config}{exists}")
        width = max(len(key) for key, _, _ in rows)
        values = [_render(value) for _, value, _ in rows]
        vwidth = min(max(len(v) for v in values), 48)
        for (key, _, source), value in zip(rows, values, strict=True):
            print(f"{key:<{width}}  {value:<{vwidth}}  {source}".rstrip())


@config_app.command("validate")
def validate(
    home: HomeOpt = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Check this file instead of <home>/config.yaml.", show_default=False
        ),
    ] = None,
    no_env: Annotated[
        bool, typer.Option("--no-env", help="Ignore SHADOWVAULT_* variables; check the file alone.")
    ] = False,
) -> None:
    """Check a configuration as the daemon would load it (file + environment).

    Exit codes: 0 valid; 1 invalid (one message per problem on stderr: source, key path,
    what was expected, what was found).
    """
    with user_errors():
        path = file if file is not None else resolve_home(home).config
        load_config(
            path,
            env=None if no_env else os.environ,
            required=file is not None,
            label=str(file) if file is not None else None,
        )
        note = "" if path.exists() else " (no file: defaults)"
        print(f"configuration OK: {path}{note}")
