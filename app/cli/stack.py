"""The commands that run things: ``up`` (the local stack), ``serve`` (the deployments),
``web`` (the archive page) and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brokerflow.kernel.errors import BadInput


def up(host: Annotated[str, typer.Option()] = "127.0.0.1",
       prefect_port: Annotated[int, typer.Option()] = 4200,
       s3_port: Annotated[int, typer.Option()] = 9000,
       web_port: Annotated[int, typer.Option()] = 8400,
       store: Annotated[str | None, typer.Option(
           metavar="directory|minio|moto",
           help="the document store when BROKERFLOW_S3_ENDPOINT is not set: a durable "
                "directory under the home (the default), a local minio server (binary on "
                "PATH), or moto (a test server: objects in memory)")] = None,
       postgres: Annotated[bool, typer.Option(
           "--postgres", help="brokerflow's and Prefect's databases on a local PostgreSQL "
                              "cluster under the home (kept for later runs; also "
                              "BROKERFLOW_LOCAL_POSTGRES=1)")] = False) -> None:
    """Start the local stack (Prefect server, document store, schema, serve, archive page)."""
    from brokerflow.app.stack import run_stack

    code = run_stack(host=host, prefect_port=prefect_port, s3_port=s3_port, web_port=web_port,
                     store=store, postgres=postgres)
    if code:
        raise typer.Exit(code)


def serve(prefect_yaml: Annotated[Path | None, typer.Option(
        metavar="FILE", help="serve the deployments of this file (default: brokerflow's own)")
        ] = None) -> None:
    """Serve the deployments of prefect.yaml (a worker), sweeping for stranded runs."""
    from brokerflow.app.serving import PREFECT_YAML, serve_declared

    path = prefect_yaml or PREFECT_YAML
    if not path.is_file():
        raise BadInput("no such file", file=str(path))
    serve_declared(path)


def web(host: Annotated[str, typer.Option()] = "127.0.0.1",
        port: Annotated[int, typer.Option()] = 8400) -> None:
    """Serve the archive search page."""
    from brokerflow.app.web import serve_web

    serve_web(host=host, port=port)


def demo(auto_approve: Annotated[bool, typer.Option(
             "--auto-approve", help="sign every step as the sample signers and print the serials")
         ] = False,
         export: Annotated[Path | None, typer.Option(
             metavar="DIR", help="write every archived PDF here")] = None) -> None:
    """One filing, one attribution, one monthly closing."""
    from brokerflow.app.demo import run_demo

    code = run_demo(auto_approve=auto_approve, export=export)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("up", help="start the local stack (Prefect server, document store, schema)")(up)
    app.command("serve", help="serve the deployments of prefect.yaml (a worker)")(serve)
    app.command("web", help="serve the archive search page")(web)
    app.command("demo", help="one filing, one attribution, one monthly closing")(demo)
