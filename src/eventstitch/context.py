"""What a service needs to do its work in this process: settings, storage, the source cache."""

from __future__ import annotations

from dataclasses import dataclass

from eventstitch.config import Config
from eventstitch.identity.rules import Policy
from eventstitch.rejections.buffer import RejectionBuffer
from eventstitch.sources.cache import SourceCache
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import RateLimit


@dataclass(frozen=True)
class AppContext:
    config: Config
    storage: Storage
    sources: SourceCache
    policy: Policy
    rejections: RejectionBuffer
    """Refused ingest requests on their way to storage (started by the app, not the CLI)."""

    @classmethod
    def build(cls, config: Config, storage: Storage) -> AppContext:
        return cls(
            config,
            storage,
            SourceCache(
                storage,
                ttl_seconds=config.source_cache_seconds,
                default_limit=RateLimit(config.rate_limit_per_second, config.rate_limit_burst),
                max_entries=config.source_cache_max_entries,
                max_bytes=config.source_cache_max_bytes,
            ),
            Policy.from_config(config),
            RejectionBuffer(config, storage),
        )
