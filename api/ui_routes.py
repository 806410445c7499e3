"""The dashboard: ``/`` serves its page, ``/signin`` the sign-in page, ``/ui/...`` their files.

The files in ``ui/static/`` are read once when the app is made. Each gets an ETag from its
content; the page links every file with ``?v=<etag>`` (the stylesheet directly, the JavaScript
modules through an import map, so that modules importing each other by relative path get the
versioned URLs too). A versioned URL is cached by browsers for a year; a new release changes the
version, never the content behind an old one. Unversioned URLs and the page itself are
revalidated (304 when unchanged). Compression is the app's gzip middleware (see ``app.py``).

Both pages are answered with a Content Security Policy that lets them load this origin's files
and nothing else: no inline style or script, no eval, no data: URL. The one inline script, the
dashboard's import map, is allowed by its SHA-256 digest, since browsers load import maps only
inline. ``/favicon.ico``, which browsers ask for by themselves, answers the pages' icon.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
from dataclasses import dataclass, replace
from pathlib import Path

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath

from api.errors import ApiError

__all__ = ["UiAssets", "load_assets", "ui_handlers"]

STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"
DASHBOARD = "index.html"
SIGN_IN = "signin.html"
ICON = "favicon.svg"
POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
IMPORT_MAP_MARK = "<!-- import-map -->"
VERSION_MARK = "?v=@"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    policy: str | None = None


@dataclass(frozen=True)
class UiAssets:
    files: dict[str, Asset]
    pages: dict[str, Asset]


def _asset(body: bytes, name: str) -> Asset:
    suffix = Path(name).suffix
    media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
    return Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])


def load_assets(folder: Path = STATIC) -> UiAssets:
    """Every file under ``folder`` by its relative path, and the pages linking their versions."""
    pages = (DASHBOARD, SIGN_IN)
    files = {
        path.relative_to(folder).as_posix(): _asset(path.read_bytes(), path.name)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in pages
    }
    return UiAssets(files, {name: _page(folder / name, files) for name in pages})


def _page(path: Path, files: dict[str, Asset]) -> Asset:
    page, import_map = _versioned_page(path.read_text(encoding="utf-8"), files)
    return replace(_asset(page.encode(), path.name), policy=_policy(import_map))


def _versioned_page(page: str, files: dict[str, Asset]) -> tuple[str, str | None]:
    """The page with each ``/ui/NAME?v=@`` link versioned and its import map, if it has one."""
    for name, asset in files.items():
        page = page.replace(f"/ui/{name}{VERSION_MARK}", f"/ui/{name}?v={asset.etag}")
    if IMPORT_MAP_MARK not in page:
        return page, None
    modules = {
        f"/ui/{name}": f"/ui/{name}?v={asset.etag}"
        for name, asset in files.items()
        if name.endswith(".js")
    }
    import_map = json.dumps({"imports": modules}, indent=1)
    # Preloading every module fetches them all at once instead of one import level at a time.
    preloads = "".join(f'\n<link rel="modulepreload" href="{url}">' for url in modules.values())
    filled = page.replace(
        IMPORT_MAP_MARK, f'<script type="importmap">{import_map}</script>{preloads}'
    )
    return filled, import_map


def _policy(import_map: str | None) -> str:
    if import_map is None:
        return POLICY
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return f"{POLICY}; script-src 'self' 'sha256-{digest}'"


def _answer(request: Request, asset: Asset, cache_control: str) -> Response[bytes]:
    etag = f'W/"{asset.etag}"'  # weak: the same content whether gzipped or not
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if asset.policy:
        headers["Content-Security-Policy"] = asset.policy
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/", sync_to_thread=False, include_in_schema=False, opt={"public": True})
def dashboard(request: Request, state: State) -> Response[bytes]:
    assets: UiAssets = state.ui_assets
    return _answer(request, assets.pages[DASHBOARD], REVALIDATE)


@get("/signin", sync_to_thread=False, include_in_schema=False, opt={"public": True})
def signin_page(request: Request, state: State) -> Response[bytes]:
    assets: UiAssets = state.ui_assets
    return _answer(request, assets.pages[SIGN_IN], REVALIDATE)


@get("/favicon.ico", sync_to_thread=False, include_in_schema=False, opt={"public": True})
def favicon(request: Request, state: State) -> Response[bytes]:
    assets: UiAssets = state.ui_assets
    return _answer(request, assets.files[ICON], REVALIDATE)


@get("/ui/{name:path}", sync_to_thread=False, include_in_schema=False, opt={"public": True})
def ui_file(request: Request, state: State, name: FromPath[str]) -> Response[bytes]:
    assets: UiAssets = state.ui_assets
    asset = assets.files.get(name.lstrip("/"))
    if asset is None:
        raise ApiError(404, f"the dashboard has no file {name!r}", parameter="name")
    versioned = request.query_params.get("v") == asset.etag
    return _answer(request, asset, IMMUTABLE if versioned else REVALIDATE)


ui_handlers = [dashboard, signin_page, favicon, ui_file]
