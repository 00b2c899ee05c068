"""``xsn identity ...``: register OAuth clients, list them, rotate the token-signing keys."""

from __future__ import annotations

import json

import click

from common.crypto.keystore import load_kek
from common.errors import Problem
from common.web.app import service_session


def _session():
    return service_session("identity")


@click.group()
def cli() -> None:
    """Identity node administration (统一身份认证)."""


@cli.group()
def clients() -> None:
    """OAuth clients (government apps and our own services)."""


@clients.command("create")
@click.option("--name", required=True, help="display name shown on the consent page")
@click.option("--client-id", default=None, help="default: app-<random>")
@click.option("--type", "client_type", type=click.Choice(["confidential", "public"]), default="confidential",
              show_default=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="exact redirect URI (repeatable)")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
              help="default: authorization_code + refresh_token")
@click.option("--scope", "scopes", multiple=True, help="allowed scope (repeatable); default: openid profile")
@click.option("--audience", "audiences", multiple=True, help="xsn:<service> (repeatable)")
@click.option("--min-acr", type=click.IntRange(1, 4), default=1, show_default=True)
@click.option("--id-token-alg", type=click.Choice(["ES256", "RS256"]), default="ES256", show_default=True)
@click.option("--access-token-lifetime", type=int, default=600, show_default=True)
@click.option("--skip-consent", is_flag=True, help="first-party app: no consent page")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def create(as_json: bool, **options) -> None:
    """Register a client and print its secret (shown once; only a keyed hash is kept)."""
    from identity.oauth import clients as registry

    spec = registry.ClientSpec(
        name=options["name"], client_id=options["client_id"], client_type=options["client_type"],
        redirect_uris=list(options["redirect_uris"]),
        post_logout_redirect_uris=list(options["post_logout_redirect_uris"]),
        grant_types=list(options["grant_types"]) or ["authorization_code", "refresh_token"],
        scopes=list(options["scopes"]) or ["openid", "profile"], audiences=list(options["audiences"]),
        min_acr=options["min_acr"], id_token_alg=options["id_token_alg"],
        access_token_lifetime=options["access_token_lifetime"], skip_consent=options["skip_consent"])
    with _session() as (app, session):
        try:
            client, secret = registry.register_client(session, load_kek(app.config), spec)
        except registry.InvalidClientMetadata as exc:
            errors = json.dumps(exc.extra.get("errors", {}), ensure_ascii=False)
            raise click.ClickException(f"{exc.detail}: {errors}") from exc
        except Problem as exc:
            raise click.ClickException(exc.detail) from exc
        session.commit()
        result = {"client_id": client.client_id, "client_secret": secret, "client_type": client.client_type,
                  "token_endpoint_auth_method": client.token_endpoint_auth_method}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"client_id:     {result['client_id']}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is shown only now; store it safely)")


@clients.command("list")
def list_() -> None:
    """Registered clients."""
    from identity.oauth import clients as registry

    with _session() as (_app, session):
        for client in registry.list_clients(session):
            state = "disabled" if client.disabled_at else client.client_type
            click.echo(f"{client.client_id:<28} {state:<13} {' '.join(client.grant_types):<40} {client.name}")


@cli.group()
def keys() -> None:
    """Token-signing keys."""


@keys.command("rotate")
@click.option("--alg", type=click.Choice(["ES256", "RS256"]), default="ES256", show_default=True)
def rotate(alg: str) -> None:
    """Promote the already-published next key to active and publish a new next key.

    Workers pick up the new active key within 30 seconds; the old key stays in the JWKS until
    the tokens it signed have expired.
    """
    from identity.oauth import tokens

    with _session() as (app, session):
        row = tokens.rotate_keys(session, load_kek(app.config), alg)
        session.commit()
        click.echo(f"active {alg} key: {row.kid}")
