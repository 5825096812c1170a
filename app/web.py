"""The archive search page: log in with roster user id + secret, search, open PDFs.

The SPEC §5 reading rules apply exactly as in the CLI (both go through ``Archive``); failed
logins and denied reads are written to the access log.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessError, BadInput, NotFound, StorageError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.resources import templates_dir
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES

WEB_TEMPLATES = templates_dir() / "web"


def create_app(archive: Archive) -> FastAPI:
    """The web app over one ``Archive`` (database + object store)."""
    app = FastAPI(title="brokerflow archive", docs_url=None, redoc_url=None)
    app.add_middleware(SessionMiddleware, secret_key=archive.settings.secret_key,
                       session_cookie="brokerflow_session", same_site="strict",
                       max_age=8 * 3600)
    templates = Jinja2Templates(directory=str(WEB_TEMPLATES))

    def current_user(request: Request) -> UserView | None:
        user_id = request.session.get("user_id")
        if not user_id:
            return None
        with new_session(archive.engine) as session:
            return get_user_view(session, user_id)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return RedirectResponse("/search" if current_user(request) else "/login", 303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return page(request, "login.html", error="")

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, user_id: str = Form(""), secret: str = Form("")) -> Response:
        try:
            user = archive.authenticate(user_id.strip(), secret)
        except AccessError:
            return page(request, "login.html", status_code=401,
                        error="Unknown user or wrong secret (用户名或口令错误).")
        request.session["user_id"] = user.user_id
        return RedirectResponse("/search", 303)

    @app.post("/logout")
    def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", 303)

    @app.get("/search", response_class=HTMLResponse)
    def search(request: Request, serial: str = "", type: str = "", cm: str = "",
               month: str = "", status: str = "") -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse("/login", 303)
        query = {"serial": serial.strip(), "type": type, "cm": cm.strip(),
                 "month": month.strip(), "status": status}
        rows: list[Any] = []
        error = ""
        if any(query.values()) or request.query_params.get("all"):
            try:
                rows = archive.search(
                    SearchFilter(serial=query["serial"] or None, doc_type=type or None,
                                 cm_id=query["cm"] or None, month=query["month"] or None,
                                 status=status or None, limit=500), actor=user)
            except BadInput as exc:
                error = str(exc)
        return page(request, "search.html", user=user, query=query, rows=rows, error=error,
                    types=DOCUMENT_TYPES, searched=bool(any(query.values())))

    @app.get("/documents/{serial}.pdf")
    def document(request: Request, serial: str) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse("/login", 303)
        try:
            entry, data = archive.get(serial, actor=user)
        except BadInput as exc:
            return page(request, "message.html", status_code=400, user=user, message=str(exc))
        except NotFound:
            return page(request, "message.html", status_code=404, user=user,
                        message=f"No document {serial}.")
        except AccessError:
            return page(request, "message.html", status_code=403, user=user,
                        message=f"You may not read {serial}; the attempt was logged. "
                                "(无权查阅，已记录)")
        except StorageError as exc:
            return page(request, "message.html", status_code=502, user=user, message=str(exc))
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{entry.serial}.pdf"',
            "X-Content-SHA256": entry.sha256, "Cache-Control": "no-store"})

    return app


def serve_web(*, host: str, port: int) -> None:
    """Run the archive page (blocks)."""
    import uvicorn

    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.settings import load_settings

    uvicorn.run(create_app(open_archive(load_settings())), host=host, port=port,
                log_level="warning")
