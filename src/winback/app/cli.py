"""The `winback` command: every job as a subcommand; flows run in-process unless PREFECT_API_URL is set.

The commands live in `winback.app.commands`, one module per group, each added below with one line. An
expected failure (see `winback.app.failures`) anywhere in a command is one line and exit code 2.
"""

from __future__ import annotations

from winback.app.runtime import configure_prefect_environment

configure_prefect_environment()

from typing import Any  # noqa: E402

import click  # noqa: E402
import typer  # noqa: E402
from rich.markup import escape  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from winback.app.commands import customer, database, demo, models, offers, report, runs, serve  # noqa: E402
from winback.app.commands.common import console  # noqa: E402
from winback.app.commands.outbox import outbox_app  # noqa: E402
from winback.app.commands.quality import quality as quality_command  # noqa: E402
from winback.app.commands.uplift import uplift_app  # noqa: E402


class OneLineErrors(TyperGroup):
    """The root group: an expected failure in any command becomes `error: <one line>` and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an expected failure (WinbackError and kin) ends as one line and exit code 2."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            from winback.app.failures import is_expected

            if not is_expected(exc):
                raise
            fail(exc)


def fail(exc: BaseException) -> None:
    """Print the one line and exit 2."""
    from winback.app.failures import one_line

    console.print(f"[red]error:[/red] {escape(one_line(exc))}", soft_wrap=True)
    raise typer.Exit(2)


app = typer.Typer(
    cls=OneLineErrors,
    help="winback: win back lapsed and aggrieved customers, and prove it worked.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a bug's traceback must not print settings or customer data
)
app.add_typer(demo.app)  # demo, demo-data
app.add_typer(runs.app)  # campaign, dispatch, track
app.add_typer(report.app)  # report
app.add_typer(customer.app)  # explain, preview, consent
app.add_typer(offers.app, name="offers")
app.add_typer(models.app, name="models")
app.add_typer(database.app, name="db")
app.add_typer(serve.app)  # serve
app.add_typer(uplift_app, name="uplift")
app.add_typer(outbox_app, name="outbox")
app.command("quality")(quality_command)


def main() -> None:
    """The console script: a failure it can name is one line and exit code 2, not a traceback."""
    try:
        app()
    except Exception as exc:  # raised outside any command (reading options, say): same rule
        from winback.app.failures import is_expected

        if not is_expected(exc):
            raise
        try:
            fail(exc)
        except click.exceptions.Exit as done:
            raise SystemExit(done.exit_code) from None


if __name__ == "__main__":
    main()
