"""Commands: `flask --app wsgi demo-data`, `flask --app wsgi kiosk-token CENTRE_ID` and
`flask --app wsgi display-token CENTRE_ID`."""

from __future__ import annotations

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    """Attach the commands (and quieten the development server when this process is `flask run`)."""
    from app.devserver import quiet_flask_run
    from app.scheduler import serving_with_flask_run

    if serving_with_flask_run():
        quiet_flask_run()

    @app.cli.command("demo-data")
    def demo_data() -> None:
        """Load the demo centres, services, registry people and accounts (idempotent; not in production)."""
        if current_app.config["SETTINGS"].is_production:
            raise click.ClickException("demo data is refused in production")
        from app.demo import load_demo_data

        counts = load_demo_data()
        click.echo(f"demo data loaded: {counts}")

    @app.cli.command("kiosk-token")
    @click.argument("centre_id")
    @click.option("--name", default=None, help="A name for the kiosk (default: kiosk-<n>)")
    def kiosk_token(centre_id: str, name: str | None) -> None:
        """Register a kiosk for CENTRE_ID and print its bearer token (last line)."""
        from sqlalchemy import func, select

        from app.accounts.models import KioskDevice
        from app.accounts.services import create_kiosk
        from app.catalogue.models import Centre
        from app.extensions import db

        if db.session.get(Centre, centre_id) is None:
            raise click.ClickException(f"no centre {centre_id!r}")
        count = db.session.scalar(select(func.count()).where(KioskDevice.centre_id == centre_id)) or 0
        _, token = create_kiosk(centre_id=centre_id, name=name or f"kiosk-{count + 1}")
        click.echo(token)

    @app.cli.command("display-token")
    @click.argument("centre_id")
    @click.option("--name", default=None, help="A name for the screen (default: display-<n>)")
    def display_token(centre_id: str, name: str | None) -> None:
        """Register a hall display for CENTRE_ID and print its token (last line); the screen opens
        `/api/v1/centres/CENTRE_ID/queue/stream?token=…` past the per-address cap."""
        from sqlalchemy import func, select

        from app.accounts.models import DisplayScreen
        from app.accounts.services import create_display
        from app.catalogue.models import Centre
        from app.extensions import db

        if db.session.get(Centre, centre_id) is None:
            raise click.ClickException(f"no centre {centre_id!r}")
        count = db.session.scalar(select(func.count()).where(DisplayScreen.centre_id == centre_id)) or 0
        _, token = create_display(centre_id=centre_id, name=name or f"display-{count + 1}")
        click.echo(token)
