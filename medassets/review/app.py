"""The review page: a Starlette app rendering Jinja2 templates on the server; no script, nothing
fetched from elsewhere (the content security policy forbids it).

Pages: `/` (the tasks), `/tasks/{task}` (its items, filtered and paged), `/tasks/{task}/items/{id}`
(one item: its text, every model's answer and what it was asked, its adjudication history and
the form to add a verdict). Items are addressed by id; no text is ever part of a URL, so access
logs hold ids only.

It answers only its user, before any handler runs: a request whose Host is not one of the page's
origins gets 400 (a DNS-rebinding page sends its own name); one without a session gets 401. A
session starts when the server's access token comes in the query (`/?token=...`, as Jupyter
does): its cookie is set and the same URL, without the token, is loaded again. Forms carry a token
tied to the session (HMAC with a key of this server process) and are refused without it, or when
their Origin is not one of the page's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, UTC
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medassets.core import adjudication as adjudication_logic
from medassets.core import review
from medassets.review.state import ReviewState
from medassets.tasks import TASK_KEYS, TASKS

HERE = Path(__file__).parent
ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SESSION_COOKIE = "medassets_review_session"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
EXCERPT_CHARS = 80  # of an item's text in its task's list; the whole text is on the item page
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make Chromium send `Origin: null` on forms
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),  # pages hold note text: no copy on disk
]


class SecurityHeaders:
    """Adds the security headers to every response, errors included."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


class AccessGuard:
    """Lets through only requests at one of `origins`' hosts that hold a session, and starts a
    session for a request holding `access_token` in its query."""

    def __init__(self, app: ASGIApp, origins: set[str], access_token: str):
        self.app, self.access_token = app, access_token
        self.sessions: set[str] = set()
        self.hosts = {urlsplit(origin).netloc for origin in origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the server's lifespan events
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if request.headers.get("host") not in self.hosts:
            response = PlainTextResponse("This page is not served at that Host.", 400)
        elif given is not None and hmac.compare_digest(given.encode(), self.access_token.encode()):
            session = secrets.token_urlsafe(32)
            self.sessions.add(session)
            query = urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "token"])
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
        elif request.cookies.get(SESSION_COOKIE) not in self.sessions:
            response = PlainTextResponse("Open the review page with the URL it printed at start (/?token=...).", 401)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def excerpt(text: str) -> str:
    """The start of a text, its whitespace runs made single spaces: EXCERPT_CHARS characters, then an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "…"


def page_origins(port: int, host: str, review_url: str) -> set[str]:
    """Where the page is reached: its loopback names on `port`, the address it listens on when that
    is one host (not every interface), and `review_url` (MEDASSETS_REVIEW_URL, where Dagster's links point)."""
    origins = {f"http://{name}:{port}" for name in LOOPBACK_NAMES}
    if host not in ("0.0.0.0", "::", ""):
        origins.add(f"http://{f'[{host}]' if ':' in host else host}:{port}")
    parts = urlsplit(review_url)
    return origins | {f"{parts.scheme}://{parts.netloc}"}


def create_app(origins: set[str], access_token: str, state: ReviewState | None = None) -> Starlette:
    """The page, answering at `origins` (scheme://host[:port]) to requests holding `access_token` or the session it started."""
    state = state or ReviewState()
    secret = secrets.token_bytes(32)
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    templates.filters["utc"] = lambda seconds: datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")

    def render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        context["csrf_token"] = hmac.new(secret, request.cookies[SESSION_COOKIE].encode(), hashlib.sha256).hexdigest()
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status_code)

    def known_task(request: Request) -> str:
        task = request.path_params["task"]
        if task not in TASKS:
            raise HTTPException(404, "no such task")
        return task

    def known_item(request: Request, items: review.TaskItems | None) -> tuple[str, int]:
        item_id = request.path_params["item_id"]
        if not ITEM_ID.fullmatch(item_id):
            raise HTTPException(400, "not an item id")
        row = int(items.ids.searchsorted(item_id)) if items is not None else 0
        if items is None or row >= len(items.ids) or items.ids[row] != item_id:
            raise HTTPException(404, "no such item")
        return item_id, row

    async def index(request: Request) -> HTMLResponse:
        tasks = []
        for task in TASK_KEYS:
            items = state.task_items(task)
            tasks.append({"key": task, "title": TASKS[task].title, "items": 0 if items is None else len(items.ids),
                          "models": 0 if items is None else len(items.models)})
        return render(request, "index.html", tasks=tasks)

    async def task_page(request: Request) -> HTMLResponse:
        task = known_task(request)
        items = state.task_items(task)
        if items is None:
            return render(request, "empty.html", task=task, title=TASKS[task].title)
        query = request.query_params
        name = query.get("filter", "all")
        arguments = {argument: query.get(argument, "") for argument in review.FILTERS.get(name, ())}
        try:
            number = int(query.get("page", "1"))
            mask = review.select(items, name, **arguments)
            shown = review.page(mask, number)
        except ValueError as exc:  # FilterError, or a page that is not a number
            raise HTTPException(400, str(exc)) from None
        pair = (query.get("a") or items.models[0], query.get("b") or items.models[-1])
        try:
            discordant = review.discordant_counts(items, *pair) if len(items.models) > 1 and pair[0] != pair[1] else None
        except review.FilterError as exc:
            raise HTTPException(400, str(exc)) from None
        history = state.adjudications.for_task(task)
        latest = adjudication_logic.current(history)
        adjudicated = adjudication_logic.adjudicated_gold(items.ids, items.gold, history)
        texts = state.texts(task)
        rows = [
            {"id": items.ids[row], "excerpt": excerpt(texts.get(items.ids[row], "")), "gold": int(items.gold[row]),
             "verdict": latest[items.ids[row]].verdict if items.ids[row] in latest else "",
             "adjudicated": int(adjudicated["label"].iat[row]),
             "cells": [review.answer_cell(items, row, column) for column in range(len(items.models))],
             "right": items.right[row].tolist()}
            for row in shown.rows
        ]

        def link(**changes) -> str:
            return f"/tasks/{task}?" + urlencode({key: value for key, value in changes.items() if value is not None})

        here = {"filter": name, **arguments}
        return render(
            request, "task.html", task=task, title=TASKS[task].title, models=items.models, rows=rows, sources=state.sources(task),
            counts=review.filter_counts(items), filter=name, arguments=arguments, page=shown, pair=pair, discordant=discordant,
            reasons=items.invalid_reasons(), link=link, here=here,
            agreement=adjudication_logic.original_agreement(adjudicated),
            reviewers=adjudication_logic.reviewer_agreement(history, dict(zip(items.ids, items.gold.tolist()))).to_dict("records"),
        )

    async def item_page(request: Request) -> HTMLResponse:
        task = known_task(request)
        items = state.task_items(task)
        item_id, row = known_item(request, items)
        return render(
            request, "item.html", task=task, title=TASKS[task].title, item_id=item_id, gold=int(items.gold[row]),
            text=state.text(task, item_id), answers=state.answers(task, item_id, items),
            history=state.adjudications.for_task(task, item_id), verdicts=adjudication_logic.VERDICTS,
            reasons=adjudication_logic.REASONS, error=None,
        )

    async def adjudicate(request: Request) -> Response:
        task = known_task(request)
        items = state.task_items(task)
        item_id, row = known_item(request, items)
        if request.headers.get("origin") not in origins:
            raise HTTPException(403, "a form from another origin")
        form = await request.form()
        expected = hmac.new(secret, request.cookies[SESSION_COOKIE].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(str(form.get("csrf_token", "")), expected):
            raise HTTPException(403, "the form's token does not match this session: reload the page and submit again")
        original, verdict = int(items.gold[row]), str(form.get("verdict", ""))
        try:  # binary tasks: a wrong gold label should be the other one
            verdict = adjudication_logic.checked(
                task, item_id, verdict, 1 - original if verdict == "wrong" else None,
                str(form.get("reason", "")), str(form.get("comment", "")), str(form.get("reviewer", "")), original,
            )
        except adjudication_logic.AdjudicationError as exc:
            raise HTTPException(400, str(exc)) from None
        state.adjudications.add(verdict)
        return RedirectResponse(f"/tasks/{task}/items/{item_id}", status_code=303)

    async def stylesheet(request: Request) -> FileResponse:
        return FileResponse(HERE / "review.css", media_type="text/css")

    async def error(request: Request, exc: HTTPException) -> HTMLResponse:
        return render(request, "error.html", status_code=exc.status_code, status=exc.status_code, detail=exc.detail)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/review.css", stylesheet),
            Route("/tasks/{task}", task_page),
            Route("/tasks/{task}/items/{item_id}", item_page),
            Route("/tasks/{task}/items/{item_id}/adjudications", adjudicate, methods=["POST"]),
        ],
        exception_handlers={HTTPException: error},
    )
    app.add_middleware(AccessGuard, origins=origins, access_token=access_token)
    app.add_middleware(SecurityHeaders)
    return app
