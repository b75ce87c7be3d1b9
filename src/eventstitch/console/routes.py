"""HTTP for the console: check the session (and CSRF on changes), call one service, render."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from eventstitch.console import explorer, overview, profiles, service, sessions, signing
from eventstitch.console.sessions import Session
from eventstitch.errors import Forbidden, PayloadTooLarge

HERE = Path(__file__).parent
STATIC_PREFIX = "/static"

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


def _max_age(request: Request) -> int:
    return int(request.app.state.ctx.config.console_session_seconds)


def signed_in(request: Request) -> Session:
    """Dependency: the session of this request, or off to sign in."""
    session = sessions.current(
        request, api_token=request.app.state.api_token, max_age=_max_age(request)
    )
    if session is None:
        raise SignInRequired
    return session


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body, read no further than its budget (413 past it)."""
    limit: int = request.app.state.ctx.config.console_max_form_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(
                f"a console form is at most {limit} bytes",
                errors=[{"field": "body", "limit": limit}],
            )
    return dict(parse_qsl(body.decode("utf-8", "replace")))


async def changing(
    request: Request, session: Annotated[Session, Depends(signed_in)]
) -> tuple[Session, dict[str, str]]:
    """Dependency for every state-changing request: a session and its CSRF token, or 403."""
    form = await read_form(request)
    given = form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
    if not sessions.csrf_ok(session, given):
        raise Forbidden("the console's CSRF token is missing or wrong; reload the page")
    return session, form


Change = Annotated[tuple[Session, dict[str, str]], Depends(changing)]
Signed = Annotated[Session, Depends(signed_in)]


def _page(request: Request, name: str, session: Session | None, **values: Any) -> Response:
    return templates.TemplateResponse(
        request, name, {"csrf": session.csrf if session else None, **values}
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    return _page(request, "signin.html", None, error=None)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await read_form(request)
    if not sessions.token_matches(form.get("token", ""), request.app.state.api_token):
        return _page(request, "signin.html", None, error="that is not the API token")
    response = RedirectResponse("/", status_code=303)
    sessions.start(
        response, request=request, api_token=request.app.state.api_token, max_age=_max_age(request)
    )
    return response


@router.post("/signout")
async def signout(_: Change) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    sessions.end(response)
    return response


@router.get("/")
async def overview_page(request: Request, session: Signed) -> Response:
    stats = await overview.get(ctx=request.app.state.ctx)
    return _page(request, "overview.html", session, stats=stats, live=stats["live"])


@router.get("/overview/live")
async def overview_live(request: Request, session: Signed) -> Response:
    live = await overview.get_live(ctx=request.app.state.ctx)
    return _page(request, "overview_live.html", session, live=live)


async def _sources_page(request: Request, session: Session, error: str | None) -> Response:
    found = await service.list_sources(ctx=request.app.state.ctx, base_url=_base_url(request))
    # A refused form is shown again with its message, as a page (200): browsers log any 4xx
    # document as a console error.
    return _page(request, "sources.html", session, sources=found, error=error)


@router.get("/sources")
async def sources_page(request: Request, session: Signed) -> Response:
    return await _sources_page(request, session, None)


@router.post("/sources")
async def create_source(request: Request, change: Change) -> Response:
    session, form = change
    try:
        await service.create_source(ctx=request.app.state.ctx, form=form)
    except service.FormError as exc:
        return await _sources_page(request, session, exc.message)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{source_id}/enable")
async def enable_source(request: Request, source_id: str, _: Change) -> Response:
    await service.update_enabled(ctx=request.app.state.ctx, source_id=source_id, enabled=True)
    return RedirectResponse("/sources", status_code=303)


@router.post("/sources/{source_id}/disable")
async def disable_source(request: Request, source_id: str, _: Change) -> Response:
    await service.update_enabled(ctx=request.app.state.ctx, source_id=source_id, enabled=False)
    return RedirectResponse("/sources", status_code=303)


@router.get("/sources/{source_id}/delete")
async def confirm_delete(request: Request, source_id: str, session: Signed) -> Response:
    source = await service.get_source(
        ctx=request.app.state.ctx, source_id=source_id, base_url=_base_url(request)
    )
    return _page(request, "confirm_delete.html", session, source=source)


@router.post("/sources/{source_id}/delete")
async def delete_source(request: Request, source_id: str, _: Change) -> Response:
    await service.delete_source(ctx=request.app.state.ctx, source_id=source_id)
    return RedirectResponse("/sources", status_code=303)


@router.get("/sources/{source_id}")
async def source_rules_page(request: Request, source_id: str, session: Signed) -> Response:
    return await _rules_page(request, session, source_id, None, None)


async def _rules_page(
    request: Request, session: Session, source_id: str, error: str | None, form: Any
) -> Response:
    ctx = request.app.state.ctx
    source = await service.get_source(ctx=ctx, source_id=source_id, base_url=_base_url(request))
    rules = form if form and "identification" in form else None
    return _page(
        request,
        "source.html",
        session,
        source=source,
        rules=rules or await profiles.get_rules(ctx=ctx, source_id=source_id),
        settings=await signing.get_settings(ctx=ctx, source_id=source_id),
        presets=signing.PRESETS,
        form=form or {},
        error=error,
    )


SourceUpdate = Callable[..., Awaitable[object]]


async def _change_source(
    request: Request, source_id: str, change: tuple[Session, dict[str, str]], update: SourceUpdate
) -> Response:
    """Apply one of the source page's forms; on a refusal the page again, with the API's
    message and what was typed."""
    session, form = change
    try:
        await update(ctx=request.app.state.ctx, source_id=source_id, form=form)
    except service.FormError as exc:
        return await _rules_page(request, session, source_id, exc.message, form)
    return RedirectResponse(f"/sources/{source_id}?saved=1", status_code=303)


@router.post("/sources/{source_id}/rules")
async def update_source_rules(request: Request, source_id: str, change: Change) -> Response:
    return await _change_source(request, source_id, change, profiles.update_rules)


@router.post("/sources/{source_id}/signature")
async def update_signature(request: Request, source_id: str, change: Change) -> Response:
    return await _change_source(request, source_id, change, signing.update_signature)


@router.post("/sources/{source_id}/rate-limit")
async def update_rate_limit(request: Request, source_id: str, change: Change) -> Response:
    return await _change_source(request, source_id, change, signing.update_rate_limit)


Filter = Annotated[str, Query(max_length=200)]


@router.get("/events")
async def live_page(
    request: Request,
    session: Signed,
    type: Filter = "",
    source: Filter = "",
    profile_less: Filter = "",
    property: Filter = "",
) -> Response:
    found = await service.list_sources(ctx=request.app.state.ctx, base_url=_base_url(request))
    filters = {"type": type, "source": source, "profile_less": profile_less, "property": property}
    return _page(request, "live.html", session, sources=found, query=urlencode(filters), **filters)


@router.get("/events/tail")
async def live_tail(
    request: Request,
    session: Signed,
    type: Filter = "",
    source: Filter = "",
    profile_less: Filter = "",
    property: Filter = "",
    after: Filter = "",
) -> Response:
    filters = {"type": type, "source": source, "profile_less": profile_less, "property": property}
    try:
        event_filter = service.live_filter(**filters)
    except service.FormError as exc:
        return _page(request, "tail.html", session, tail=None, query="", error=exc.message)
    tail = await service.get_tail(
        ctx=request.app.state.ctx, event_filter=event_filter, after=after or None
    )
    query = urlencode({**filters, "after": tail.newest_id or ""})
    return _page(request, "tail.html", session, tail=tail, query=query, error=None)


@router.get("/events/{event_id}")
async def event_page(request: Request, event_id: str, session: Signed) -> Response:
    event = await service.get_event(ctx=request.app.state.ctx, event_id=event_id)
    return _page(request, "event.html", session, event=event)


@router.get("/refusals")
async def refusals_page(request: Request, session: Signed) -> Response:
    found = await service.list_refusals(ctx=request.app.state.ctx)
    return _page(request, "refusals.html", session, refusals=found)


@router.get("/refusals/{rejection_id}")
async def refusal_page(request: Request, rejection_id: str, session: Signed) -> Response:
    refusal = await service.get_refusal(ctx=request.app.state.ctx, rejection_id=rejection_id)
    return _page(request, "refusal.html", session, refusal=refusal, answer=None, error=None)


@router.post("/refusals/{rejection_id}/replay")
async def replay_refusal(request: Request, rejection_id: str, change: Change) -> Response:
    session, _ = change
    ctx = request.app.state.ctx
    answer, error = None, None
    try:
        answer = await service.replay_refusal(ctx=ctx, rejection_id=rejection_id)
    except service.FormError as exc:
        error = exc.message
    refusal = await service.get_refusal(ctx=ctx, rejection_id=rejection_id)
    return _page(request, "refusal.html", session, refusal=refusal, answer=answer, error=error)


@router.get("/profiles")
async def profiles_page(request: Request, session: Signed, identifier: Filter = "") -> Response:
    found, error = [], None
    if identifier:
        try:
            found = await profiles.search(ctx=request.app.state.ctx, identifier=identifier)
        except service.FormError as exc:
            error = exc.message
    return _page(
        request, "profiles.html", session, identifier=identifier, profiles=found, error=error
    )


@router.get("/profiles/{profile_id}")
async def profile_page(request: Request, profile_id: str, session: Signed) -> Response:
    profile = await profiles.get_profile(ctx=request.app.state.ctx, profile_id=profile_id)
    return _page(request, "profile.html", session, profile=profile)


@router.get("/profiles/{profile_id}/erase")
async def confirm_erase(request: Request, profile_id: str, session: Signed) -> Response:
    profile = await profiles.get_profile(ctx=request.app.state.ctx, profile_id=profile_id)
    return _page(request, "confirm_erase.html", session, profile=profile)


@router.post("/profiles/{profile_id}/erase")
async def erase_profile(request: Request, profile_id: str, change: Change) -> Response:
    session, _ = change
    live_id, removed, events = await profiles.erase(
        ctx=request.app.state.ctx, profile_id=profile_id
    )
    erased = {"id": live_id, "profiles": removed, "events": events}
    return _page(request, "profiles.html", session, identifier="", profiles=[], erased=erased)


@router.get("/insights")
async def insights_page(request: Request, session: Signed) -> Response:
    params = [(k, v[:200]) for k, v in request.query_params.multi_items()]
    values = explorer.form_values(params)
    answer, chart, error = None, None, None
    if params:
        try:
            answer = await explorer.run(ctx=request.app.state.ctx, values=values)
            chart = explorer.chart(answer)
        except service.FormError as exc:
            error = exc.message
    return _page(
        request,
        "insights.html",
        session,
        form=values,
        answer=answer,
        chart=chart,
        error=error,
        metrics=explorer.METRICS,
        dimensions=explorer.DIMENSIONS,
        ranges=explorer.RANGES,
    )


async def _offline_docs(_: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Eventstitch API",
        swagger_js_url=f"{STATIC_PREFIX}/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PREFIX}/vendor/swagger-ui/favicon-32x32.png",
    )


async def _sign_in_first(request: Request, _: Exception) -> Response:
    if request.headers.get("HX-Request"):  # htmx follows this header, not a 303, for a page
        return Response(status_code=204, headers={"HX-Redirect": "/signin"})
    return RedirectResponse("/signin", status_code=303)


def install(api: FastAPI) -> None:
    """Mount the console, its static files and the offline `/docs` on the management app."""
    api.include_router(router)
    api.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")
    api.add_route("/docs", _offline_docs, include_in_schema=False)
    api.add_exception_handler(SignInRequired, _sign_in_first)
