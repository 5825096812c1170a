"""The archive search page: log in with roster user id + secret, search, open PDFs.

The SPEC §5 reading rules apply exactly as in the CLI (both go through ``Archive``); failed
logins and denied reads are written to the access log.  Hardening (SPEC §2.1): server-side
sessions (``kernel.sessions``) that logging out ends, lockout per user and per address, a CSRF
token on every post (the login form's too), ``Secure`` cookies when the page is served over
HTTPS, a nonce-based Content-Security-Policy and frame denial on every answer.
"""

from __future__ import annotations

import re
import secrets
import sys
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.middleware.sessions import SessionMiddleware

from brokerflow.app.inbox import waiting_for
from brokerflow.approvals.inbox import inbox_view
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import is_busy, new_session, read_session, unavailable
from brokerflow.kernel.errors import AccessError, BadInput, NotFound, StorageError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.resources import templates_dir
from brokerflow.kernel.sessions import end_web_session, session_user, start_web_session
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES

WEB_TEMPLATES = templates_dir() / "web"


SESSION_HOURS = 8
SAFE_NEXT = re.compile(r"/(search|documents/[A-Za-z0-9%-]{1,80}\.pdf)(\?[^\s]{0,500})?")


def security_headers(nonce: str) -> dict[str, str]:
    """Headers on every answer: no framing, no foreign code or styles, no caching."""
    return {
        "Content-Security-Policy": (f"default-src 'none'; style-src 'nonce-{nonce}'; "
                                    "img-src 'self'; form-action 'self'; base-uri 'none'; "
                                    "frame-ancestors 'none'"),
        "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    }


def create_app(archive: Archive, *, prefect_ui: str | None = None) -> FastAPI:
    """The web app over one ``Archive`` (database + object store); ``prefect_ui``: the Prefect
    UI the inbox links runs to (default: this process's Prefect settings, or the local
    stack's)."""
    app = FastAPI(title="brokerflow archive", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key=archive.settings.secret_key,
                       session_cookie="brokerflow_session", same_site="strict",
                       max_age=SESSION_HOURS * 3600,
                       https_only=archive.settings.web_url.startswith("https://"))
    templates = Jinja2Templates(directory=str(WEB_TEMPLATES))

    @app.middleware("http")
    async def add_security_headers(request: Request, call_next: Any) -> Response:
        request.state.nonce = secrets.token_urlsafe(16)
        response: Response = await call_next(request)
        response.headers.update(security_headers(request.state.nonce))
        return response

    def current_user(request: Request) -> UserView | None:
        token = request.session.get("sid")
        if not isinstance(token, str) or not token:
            return None
        with read_session(archive.engine) as session:
            return session_user(session, token=token, max_age=timedelta(hours=SESSION_HOURS))

    def session_csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str) or not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def csrf_ok(request: Request, sent: str) -> bool:
        expected = request.session.get("csrf")
        return isinstance(expected, str) and bool(expected) and secrets.compare_digest(
            expected.encode(), sent.encode())

    def address(request: Request) -> str:
        return request.client.host if request.client else ""

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(
            request, name, {"nonce": request.state.nonce, "csrf": session_csrf(request), **context},
            status_code=status_code)

    def refused_post(request: Request, what: str) -> Response:
        archive.log_refusal(request.session.get("user_id", "") or "(anonymous)", what,
                            reason=f"missing or wrong CSRF token from {address(request)}")
        return page(request, "message.html", status_code=403, user=None,
                    message="This form is out of date or came from another site; reload the "
                            "page and try again. (表单已失效)")

    @app.exception_handler(OperationalError)
    async def database_busy(request: Request, exc: OperationalError) -> Response:
        cause = unavailable(exc)
        if cause is not None:  # the operator's log names the database; the page does not
            print(f"brokerflow web: {cause}", file=sys.stderr, flush=True)
            return page(request, "message.html", status_code=503, user=None,
                        message="The archive's database cannot be reached; nothing was "
                                "changed. Tell the operator. (数据库无法连接)")
        if not is_busy(exc):
            raise exc
        return page(request, "message.html", status_code=503, user=None,
                    message="The archive's database is busy; nothing was changed. Try again "
                            "in a minute. (数据库繁忙，请稍后再试)")

    def inbox_rows(user: UserView) -> list[dict[str, str]]:
        """待我签批 for ``user``: the steps they may sign now (SPEC §9)."""
        with read_session(archive.engine) as session:
            items = waiting_for(session, user=user, zone=archive.zone)
        if not items:
            return []
        return inbox_view(items, prefect_ui=prefect_ui or _prefect_ui(), zone=archive.zone,
                          pdf_link=lambda serial: f"/documents/{quote(serial, safe='')}.pdf")

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return RedirectResponse("/search" if current_user(request) else "/login", 303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        return page(request, "login.html", error="", next=next if SAFE_NEXT.fullmatch(next)
                    else "")

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, user_id: str = Form(""), secret: str = Form(""),
              csrf_token: str = Form(""), next: str = Form("")) -> Response:
        if not csrf_ok(request, csrf_token):  # login CSRF: only our own form logs in
            return refused_post(request, "log in")
        try:
            user = archive.authenticate(user_id.strip()[:64], secret, channel="web",
                                        address=address(request))
        except AccessError as exc:
            locked = "locked out" in str(exc)
            return page(request, "login.html", status_code=429 if locked else 401,
                        next=next if SAFE_NEXT.fullmatch(next) else "",
                        error=("Too many failed attempts: locked for 15 minutes (登录失败次数过多，"
                               "已锁定)." if locked else
                               "Unknown user or wrong secret (用户名或口令错误)."))
        with new_session(archive.engine) as session:
            token = start_web_session(session, user_id=user.user_id, address=address(request))
            session.commit()
        request.session.clear()  # a new session: no fixation
        request.session.update(sid=token, user_id=user.user_id,
                               csrf=secrets.token_urlsafe(32))
        return RedirectResponse(next if SAFE_NEXT.fullmatch(next) else "/search", 303)

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        if not csrf_ok(request, csrf_token):
            return refused_post(request, "log out")
        token = request.session.get("sid")
        if isinstance(token, str) and token:
            with new_session(archive.engine) as session:
                end_web_session(session, token=token)
                session.commit()
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
        return page(request, "search.html", status_code=400 if error else 200, user=user,
                    query=query, rows=rows, error=error, types=DOCUMENT_TYPES,
                    searched=bool(any(query.values())), inbox=inbox_rows(user))

    @app.get("/documents/{serial}.pdf")
    def document(request: Request, serial: str) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse(f"/login?next=/documents/{quote(serial, safe='')}.pdf", 303)
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


def _prefect_ui() -> str:
    """The Prefect UI's address: this process's Prefect settings, or the local stack's."""
    from brokerflow.app.runs import use_local_stack_api
    from brokerflow.approvals.waiting import prefect_ui_url

    use_local_stack_api()
    return prefect_ui_url()


def serve_web(*, host: str, port: int) -> None:
    """Run the archive page (blocks)."""
    import uvicorn

    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.settings import load_settings

    uvicorn.run(create_app(open_archive(load_settings())), host=host, port=port,
                log_level="warning")
