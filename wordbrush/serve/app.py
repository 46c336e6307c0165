"""The HTTP server: `create_app(settings, pipeline=None)` builds a FastAPI app that serves one pipeline.

    POST /v1/images/generations   OpenAI's Images API shape (+ seed, guidance_scale, temperature, candidates)
    GET  /v1/models               the served model, in OpenAI's list shape (and /v1/models/{id})
    GET  /healthz                 200 once the model is loaded and its worker runs, else 503
    GET  /                        the web page (static/)

The pipeline, the batcher and the settings live in app.state.server (no module global); errors are made in
errors.py; the API key and the body limit are checked in guard.py before any route.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import unicodedata
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from .batching import Batcher, QueueFull, Stopped
from .errors import APIError, ErrorResponse, install_error_handlers
from .guard import RequestGuard
from .settings import ServeSettings

log = logging.getLogger("wordbrush.serve")
MAX_SEED = 2**32 - 1
STATIC = resources.files("wordbrush.serve") / "static"
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


# ------------------------------------------------------------------------------------------ request / response


class ImageRequest(BaseModel):
    """OpenAI's image-generation request; the last five fields are wordbrush's (send them in `extra_body`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(description="what to draw")
    model: str | None = Field(None, description="must be the served model's name when given")
    n: int | None = Field(None, ge=1, description="number of images (default 1)")
    size: str | None = Field(None, description="'WxH': only the model's own size (or 'auto')")
    response_format: str | None = Field(None, description="'b64_json' (the only one: no image files are kept)")
    user: str | None = Field(None, max_length=256, description="accepted and ignored")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="image k uses seed + k (default: random)")
    guidance_scale: float | None = Field(None, ge=0, allow_inf_nan=False)
    temperature: float | None = Field(None, gt=0, allow_inf_nan=False)
    candidates: int | None = Field(None, ge=1, description="draw this many per image and keep the likeliest")
    rewrite: bool | None = Field(None, description="false: draw the prompt as typed, even where the model's prompt "
                                 "rewriter would read it as one of its own captions (default: the model's)")


class ImageData(BaseModel):
    b64_json: str
    seed: int
    revised_prompt: str = Field(description="what the model drew: the prompt, or the caption its rewriter read it as")


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    warnings: list[str] = Field(default_factory=list, description="e.g. words the model never saw")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "wordbrush"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    waiting: int
    batches: int
    images: int


ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 429, 500, 503)}


# ------------------------------------------------------------------------------------------------- state


def load_pipeline(settings: ServeSettings):
    from ..pipeline import TextToImagePipeline  # torch loads here, not when the command parses its flags

    pipe = TextToImagePipeline.from_pretrained(settings.model)
    if settings.compile:  # compiled now, for full batches of the model's defaults, not on the first requests
        pipe.compile()
        pipe.draw(["warm-up"] * settings.max_batch, list(range(settings.max_batch)),
                  batch_size=settings.max_batch * pipe.sampling.candidates)
    pipe.revise(["warm-up"])  # a model's prompt rewriter loads its reader now, not on the first request
    return pipe


def served_name(settings: ServeSettings) -> str:
    return settings.model_name or Path(settings.model).name or str(settings.model)


@dataclass
class Server:
    settings: ServeSettings
    pipe: object
    name: str
    batcher: Batcher
    created: int

    @property
    def size(self) -> str:
        return f"{self.pipe.image_size}x{self.pipe.image_size}"

    def prepare(self, req: ImageRequest) -> tuple[list[str], list[int], object, list[str]]:
        """The prompts the model draws and seeds (one per image), sampling options and warnings; APIError if
        invalid."""
        lim = self.settings.limits
        if req.model is not None and req.model != self.name:
            raise APIError(404, f"model {req.model!r} is not served here; this server serves {self.name!r}",
                           "model", "model_not_found")
        n = 1 if req.n is None else req.n
        if n > lim.max_n:
            raise APIError(400, f"n must be at most {lim.max_n}, got {n}", "n", "invalid_value")
        if req.size not in (None, "auto", self.size):
            raise APIError(400, f"size {req.size!r} is not supported: this model draws {self.size} images",
                           "size", "invalid_value")
        if req.response_format == "url":
            raise APIError(400, "response_format 'url' is not supported: this server keeps no image files; "
                           "use 'b64_json'", "response_format", "invalid_value")
        if req.response_format not in (None, "b64_json"):
            raise APIError(400, f"response_format must be 'b64_json', got {req.response_format!r}",
                           "response_format", "invalid_value")
        check_prompt(req.prompt, lim.max_prompt_chars)
        for name, value, top in (("guidance_scale", req.guidance_scale, lim.max_guidance),
                                 ("temperature", req.temperature, lim.max_temperature),
                                 ("candidates", req.candidates, lim.max_candidates)):
            if value is not None and value > top:
                raise APIError(400, f"{name} must be at most {top}, got {value}", name, "invalid_value")
        try:
            options = self.pipe.sampling_options(guidance_scale=req.guidance_scale, temperature=req.temperature,
                                                 candidates=req.candidates, rewrite=req.rewrite)
            _, drawn, notes, revisions = self.pipe.read_prompts([req.prompt], options)
        except ValueError as e:  # WordbrushError and SampleOptions.validate's ValueError: the message says why
            raise APIError(400, str(e), None, "invalid_value") from None
        seed = secrets.randbelow(2**31) if req.seed is None else req.seed
        return drawn * n, [seed + k for k in range(n)], options, notes + revisions


def check_prompt(prompt: str, max_chars: int) -> None:
    if len(prompt) > max_chars:
        raise APIError(400, f"prompt has {len(prompt):,} characters; the limit is {max_chars:,}", "prompt",
                       "invalid_value")
    for i, ch in enumerate(prompt):
        if unicodedata.category(ch) in ("Cc", "Cs"):  # control characters, lone surrogates
            raise APIError(400, f"prompt has a control character (U+{ord(ch):04X}) at position {i}", "prompt",
                           "invalid_value")
    if not prompt.strip():
        raise APIError(400, "prompt is empty", "prompt", "invalid_value")


def server(request: Request) -> Server:
    state = getattr(request.app.state, "server", None)
    if state is None:
        raise APIError(503, "the model is still loading", code="not_ready")
    return state


def require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise APIError(415, f"the body must be JSON: send 'Content-Type: application/json' (got {kind or 'none'!r})",
                       code="unsupported_media_type")


async def until_drawn(request: Request, future) -> list[str]:
    """The job's images, or APIError(499) as soon as the client disconnects (the job is then dropped, if not yet
    drawn). The worker thread draws; this only awaits."""
    drawn = asyncio.wrap_future(future)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({drawn, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not drawn.done():
        drawn.cancel()  # cancels the job too while it is still queued
        raise APIError(499, "client closed the request", code="client_closed")
    try:
        return drawn.result()
    except Stopped as e:
        raise APIError(503, str(e), code="shutting_down") from None
    except Exception:  # the worker logged the traceback; the client learns only that it failed
        raise APIError(500, "the model failed to draw this request", code="model_error") from None


# ------------------------------------------------------------------------------------------------- routes

api = APIRouter()


@api.post("/v1/images/generations", response_model=ImagesResponse, responses=ERRORS,
          dependencies=[Depends(require_json)])
async def generate(req: ImageRequest, request: Request, srv: Annotated[Server, Depends(server)]) -> ImagesResponse:
    prompts, seeds, options, notes = srv.prepare(req)
    try:
        future = srv.batcher.submit(prompts, seeds, options)
    except QueueFull as e:
        raise APIError(429, f"the server is busy ({e.waiting} requests waiting); retry after {e.retry_after} s",
                       code="queue_full", headers={"Retry-After": str(e.retry_after)}) from None
    except Stopped as e:
        raise APIError(503, str(e), code="shutting_down") from None
    images = await until_drawn(request, future)
    return ImagesResponse(created=int(time.time()), data=[ImageData(b64_json=b, seed=s, revised_prompt=p)
                                                        for b, s, p in zip(images, seeds, prompts)],
                          warnings=notes)


@api.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def models(srv: Annotated[Server, Depends(server)]) -> ModelList:
    return ModelList(data=[ModelCard(id=srv.name, created=srv.created)])


@api.get("/v1/models/{model_id}", response_model=ModelCard, responses=ERRORS)
async def model(model_id: str, srv: Annotated[Server, Depends(server)]) -> ModelCard:
    if model_id != srv.name:
        raise APIError(404, f"model {model_id!r} is not served here; this server serves {srv.name!r}", "model",
                       "model_not_found")
    return ModelCard(id=srv.name, created=srv.created)


@api.get("/healthz", response_model=Health, responses=ERRORS)
async def healthz(srv: Annotated[Server, Depends(server)]) -> Health:
    if not srv.batcher.alive:
        raise APIError(503, "the model worker is not running", code="not_ready")
    b = srv.batcher
    return Health(model=srv.name, waiting=b.waiting, batches=b.batches, images=b.images)


@api.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), headers={"Content-Security-Policy": PAGE_POLICY})


# ------------------------------------------------------------------------------------------------ factory


def create_app(settings: ServeSettings | None = None, pipeline=None) -> FastAPI:
    """The app serving `pipeline` (loaded from settings.model at startup when None) with these settings."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pipe = pipeline if pipeline is not None else await asyncio.to_thread(load_pipeline, settings)
        batcher = Batcher(pipe, settings.max_batch, settings.max_wait_ms, settings.max_queue).start()
        app.state.server = Server(settings, pipe, served_name(settings), batcher, int(time.time()))
        log.info("serving %s (%s) with batches of up to %d images", app.state.server.name, settings.model,
                 settings.max_batch)
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.stop)
            app.state.server = None

    app = FastAPI(title="wordbrush", summary="text-to-image in the OpenAI Images API shape", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.server = None
    install_error_handlers(app)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(RequestGuard, api_key=key, max_body_bytes=settings.limits.max_body_bytes)
    return app
