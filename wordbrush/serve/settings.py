"""The server's settings: one typed object, read from keyword arguments (the command's flags), then from
WORDBRUSH_* environment variables (WORDBRUSH_MODEL, WORDBRUSH_API_KEY, WORDBRUSH_LIMITS__MAX_N, ...), then defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Limits(BaseModel):
    """What one request may ask for; anything beyond is refused with a 400 (413 for the body)."""

    model_config = ConfigDict(extra="forbid")

    max_n: int = Field(8, ge=1, le=1024, description="images per request")
    max_prompt_chars: int = Field(1000, ge=1, le=100_000, description="characters in a prompt")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="request body size; larger bodies get 413")
    max_candidates: int = Field(8, ge=1, le=64, description="candidates per image (each costs a full sample)")
    max_guidance: float = Field(20.0, gt=0, description="largest guidance_scale")
    max_temperature: float = Field(5.0, gt=0, description="largest temperature")


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORDBRUSH_", env_nested_delimiter="__", extra="forbid")

    model: str = Field("shapes", description="built-in model name or saved model folder")
    model_name: str | None = Field(None, description="the name clients use in `model` (default: the built-in name "
                                   "or the folder's name)")
    host: str = Field("127.0.0.1", description="address to bind (loopback by default)")
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="when set, every route but /healthz and the page itself "
                                      "needs `Authorization: Bearer KEY`")
    max_batch: int = Field(32, ge=1, le=4096, description="images in one model call")
    max_wait_ms: float = Field(10.0, ge=0, le=60_000, description="how long the first request of a batch waits "
                               "for others to join it")
    max_queue: int = Field(256, ge=1, description="requests waiting for the model; one more gets 429")
    compile: bool = Field(False, description="sample through torch.compile, compiled for a batch of max_batch "
                          "images before the server takes requests")
    limits: Limits = Field(default_factory=Limits)
