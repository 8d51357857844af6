"""`vigil console …`: serve the analyst console, manage its accounts and tokens."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

__all__ = ["register"]

console_app = typer.Typer(help="The analyst console: serve it (no sub-command), manage its accounts and tokens.",
                          invoke_without_command=True, no_args_is_help=False)


@console_app.callback()
def _console(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="address to listen on (default VIGIL_CONSOLE_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="port (default VIGIL_CONSOLE_PORT)")] = None,
) -> None:
    """Serve the analyst console (queue, video pages, verdicts, alerts) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from ._shared import serve_logging, console, exit_on_error, settings_or_exit
    from ..console import serve

    settings = settings_or_exit()
    serve_logging(settings)
    console.print(f"Vigil console on http://{host or settings.console_host}:{port or settings.console_port}")
    with exit_on_error("console"):
        serve(settings, host=host, port=port)


@console_app.command("adduser")
def adduser(
    name: Annotated[str, typer.Argument(help="user name (a-z 0-9 . _ - @)")],
    role: Annotated[str, typer.Option(help="analyst or admin")] = "analyst",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")
                              ] = False,
) -> None:
    """Create a console user, or give an existing one a new password and role (which ends its sessions)."""
    from ._shared import console, exit_on_error, settings_or_exit
    from ..console import Accounts, make_store_client

    settings = settings_or_exit()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with exit_on_error("adduser"):
        user = Accounts(make_store_client(settings), settings).add_user(name, role, password)
    console.print(f"saved console user {user.name} ({user.role})")


@console_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="the user the token acts as")],
    revoke: Annotated[Optional[str], typer.Option(help="revoke the token with this id, or `all` of the user's")
                      ] = None,
    list_: Annotated[bool, typer.Option("--list", help="list the user's tokens (ids only)")] = False,
) -> None:
    """Print a new bearer token for scripts (`Authorization: Bearer …` on /api/*); --revoke ID|all (all also ends
    every browser session of the user), --list."""
    from ._shared import console, exit_on_error, settings_or_exit
    from ..console import Accounts, make_store_client

    settings = settings_or_exit()
    with exit_on_error("token"):
        accounts = Accounts(make_store_client(settings), settings)
        if revoke:
            console.print(f"revoked {accounts.revoke(name, revoke)} token(s) of {name}")
            return
        if list_:
            for entry in accounts.tokens(name):
                console.print(f"{entry['token_id']}  {entry['created']}  {'revoked' if entry['revoked'] else 'active'}")
            return
        value, token_id = accounts.new_token(name)
    sys.stdout.write(value + "\n")
    sys.stdout.flush()
    print(f"token id {token_id} (revoke: vigil console token {name} --revoke {token_id})", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")
