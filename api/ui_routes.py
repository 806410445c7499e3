"""The dashboard: ``/`` serves its page and ``/ui/...`` its own files.

The files in ``ui/static/`` are read once when the app is made. Each gets an ETag from its
content; the page links every file with ``?v=<etag>`` (the stylesheet directly, the JavaScript
modules through an import map, so that modules importing each other by relative path get the
versioned URLs too). A versioned URL is cached by browsers for a year; a new release changes the
version, never the content behind an old one. Unversioned URLs and the page itself are
revalidated (304 when unchanged). Compression is the app's gzip middleware (see ``app.py``).

``/favicon.ico``, which browsers ask for by themselves, answers the pages' icon.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath

from api.errors import ApiError

__all__ = ["UiAssets", "load_assets", "ui_handlers"]

STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"
PAGE = "index.html"
ICON = "favicon.svg"
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


@dataclass(frozen=True)
class UiAssets:
    files: dict[str, Asset]
    page: Asset


def _asset(body: bytes, name: str) -> Asset:
    suffix = Path(name).suffix
    media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
    return Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])


def load_assets(folder: Path = STATIC) -> UiAssets:
    """Every file under ``folder`` by its relative path, and the page linking their versions."""
    files = {
        path.relative_to(folder).as_posix(): _asset(path.read_bytes(), path.name)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != PAGE
    }
    page = (folder / PAGE).read_text(encoding="utf-8")
    return UiAssets(files, _asset(_versioned_page(page, files).encode(), PAGE))


def _versioned_page(page: str, files: dict[str, Asset]) -> str:
    """The page with each ``/ui/NAME?v=@`` link versioned and the import map filled in."""
    for name, asset in files.items():
        page = page.replace(f"/ui/{name}{VERSION_MARK}", f"/ui/{name}?v={asset.etag}")
    modules = {
        f"/ui/{name}": f"/ui/{name}?v={asset.etag}"
        for name, asset in files.items()
        if name.endswith(".js")
    }
    import_map = json.dumps({"imports": modules}, indent=1)
    # Preloading every module fetches them all at once instead of one import level at a time.
    preloads = "".join(f'\n<link rel="modulepreload" href="{url}">' for url in modules.values())
    return page.replace(
        IMPORT_MAP_MARK, f'<script type="importmap">{import_map}</script>{preloads}'
    )


def _answer(request: Request, asset: Asset, cache_control: str) -> Response[bytes]:
    etag = f'W/"{asset.etag}"'  # weak: the same content whether gzipped or not
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/", sync_to_thread=False, include_in_schema=False, opt={"public": True})
def dashboard(request: Request, state: State) -> Response[bytes]:
    assets: UiAssets = state.ui_assets
    return _answer(request, assets.page, REVALIDATE)


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


ui_handlers = [dashboard, favicon, ui_file]
