"""The settings table: every environment setting, its parser, default and why it exists.

`Config` is built from it, `serve --help` prints it, and `docs/configuration.md` is generated
from it (a test keeps the two equal).
"""

from __future__ import annotations

from pathlib import Path

from eventstitch.config.values import (
    MAX_WRITE_KEY_GRACE_SECONDS,
    Setting,
    _batch_size,
    _choice,
    _flag,
    _grace_seconds,
    _names,
    _nesting_depth,
    _non_negative_float,
    _non_negative_int,
    _port,
    _positive_float,
    _positive_int,
    _rate_burst,
    _rate_per_second,
    _region,
    _split_events,
    _text,
)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir", Path, "data", "Folder for the embedded database and the generated API token."
    ),
    Setting(
        "database_url",
        _text,
        "",
        "Where events are stored. Empty means `sqlite:///<data_dir>/eventstitch.db`. "
        "`sqlite:///path` selects the embedded backend, `postgresql://user@host/db` the server "
        "backend (install the `postgres` extra).",
    ),
    Setting(
        "api_token",
        _text,
        "",
        "Bearer token for every `/api` route. Empty: `serve` creates one in the data folder on "
        "first start and prints it once.",
    ),
    Setting(
        "api_max_body_bytes",
        _positive_int,
        "1048576",
        "Largest request body of a management API or console route (/api/..., the console's "
        "forms have their own, smaller limit); larger: 413, read no further.",
    ),
    Setting(
        "console_session_seconds",
        _positive_int,
        "28800",
        "How long a web console sign-in lasts (default 8 hours); then the console asks for the "
        "API token again.",
    ),
    Setting(
        "console_max_form_bytes",
        _positive_int,
        "65536",
        "Largest body of a web console form (sign-in, sources, replay); larger: 413, read no "
        "further.",
    ),
    Setting("host", _text, "127.0.0.1", "Address `serve` binds to."),
    Setting("port", _port, "8686", "Port `serve` listens on."),
    Setting("workers", _positive_int, "1", "Collector processes `serve` starts on one port."),
    Setting(
        "max_body_bytes", _positive_int, "1048576", "Largest request body accepted (413 above)."
    ),
    Setting(
        "max_url_bytes",
        _positive_int,
        "16384",
        "Longest request target (path and query string) in bytes; longer: 414 and the "
        "connection is closed, before the rest of the request is read.",
    ),
    Setting(
        "max_header_bytes",
        _positive_int,
        "32768",
        "Most bytes of request header names and values together, chunked trailers included; "
        "more: 431 and the connection is closed, before the rest of the head is read.",
    ),
    Setting(
        "max_header_count",
        _positive_int,
        "100",
        "Most request header fields, chunked trailers included; more: 431 and the connection "
        "is closed.",
    ),
    Setting(
        "head_timeout_seconds",
        _positive_float,
        "10",
        "Longest time a request's head (its line and headers) may take to arrive, counted from "
        "its first byte, or from the connection's opening for the first request; slower: 408 "
        "(a connection that sent nothing is closed) and nothing is stored.",
    ),
    Setting(
        "max_connections",
        _positive_int,
        "1000",
        "Most open connections each server process serves; a connection opened past it gets "
        "503 with Retry-After to its first request and is closed (those already open go on), "
        "and one that sends nothing is closed after EVENTSTITCH_HEAD_TIMEOUT_SECONDS.",
    ),
    Setting(
        "keep_alive_seconds",
        _positive_int,
        "5",
        "How long a kept-alive connection may stay idle after its last answer; then the "
        "server closes it (a client opens a new one).",
    ),
    Setting(
        "body_timeout_seconds",
        _positive_float,
        "30",
        "Longest time a request body may take to arrive, counted from the end of its headers, "
        "on every route; slower: 408 and the connection is closed, nothing stored.",
    ),
    Setting(
        "max_nesting_depth",
        _nesting_depth,
        "32",
        "Deepest nesting of objects and arrays accepted in a body (400 above; 200 at most).",
    ),
    Setting(
        "max_split_events",
        _split_events,
        "500",
        "Most events one delivery to a source that splits arrays may make (413 above; 2700 at "
        "most).",
    ),
    Setting(
        "queue_size",
        _positive_int,
        "10000",
        "Events waiting for the writer at most; when full, ingest answers 503 with Retry-After.",
    ),
    Setting(
        "batch_size",
        _batch_size,
        "1000",
        "Most events committed in one transaction (2700 at most).",
    ),
    Setting(
        "sqlite_synchronous",
        _choice("FULL", "NORMAL"),
        "FULL",
        "SQLite durability. FULL survives power loss; NORMAL survives a process crash but may "
        "lose the last commits on power loss, for more speed.",
    ),
    Setting(
        "sqlite_writer",
        _choice("PROCESS", "THREAD"),
        "PROCESS",
        "How `serve` writes events to SQLite. PROCESS: one writer process takes the events of "
        "every worker and group-commits them (workers add throughput); THREAD: each worker "
        "commits on a thread of its own (the workers then contend for SQLite's one write lock).",
    ),
    Setting(
        "sqlite_writer_socket",
        _text,
        "",
        "Set by `serve` for its workers when it runs the SQLite writer process: the Unix "
        "socket they hand events to. Empty: events are committed by the process's own thread.",
    ),
    Setting("retry_after_seconds", _positive_int, "1", "Retry-After sent with 503 answers."),
    Setting(
        "cors_origins",
        _names,
        "",
        "Browser origins allowed to call /collect and /track (comma-separated, or *); empty: "
        "no CORS headers. /api never answers cross-origin requests.",
    ),
    Setting(
        "track_max_events", _positive_int, "500", "Most events one /track call may carry (422)."
    ),
    Setting(
        "track_max_stored_bytes",
        _positive_int,
        "4194304",
        "Most bytes one /track call may store, counted over all its events: each event carries "
        "the call's context, properties and headers (413 above; nothing stored).",
    ),
    Setting(
        "write_key_grace_seconds",
        _grace_seconds,
        "86400",
        "After a tracker source's write key is rotated, how long the previous key still "
        f"works (a rotation may name its own; at most {MAX_WRITE_KEY_GRACE_SECONDS}).",
    ),
    Setting(
        "sdk_max_message_bytes",
        _positive_int,
        "32768",
        "Most bytes of one message on the SDK routes (/v1/*, /batch/, /capture/, ...), as "
        "JSON: a bigger message is kept in the quarantine, the rest of its batch stored.",
    ),
    Setting(
        "sdk_max_batch_bytes",
        _positive_int,
        "512000",
        "Most bytes of one SDK-route request body once decompressed (413 in the SDK's error "
        "shape above; nothing stored). Segment documents 500 KB.",
    ),
    Setting(
        "sdk_max_batch_messages",
        _positive_int,
        "2500",
        "Most messages in one SDK-route batch (413 above; nothing stored).",
    ),
    Setting(
        "idempotency_window_seconds",
        _non_negative_int,
        "86400",
        "How long a delivery id (Idempotency-Key, X-GitHub-Delivery, ... or the source's "
        "delivery_id_path) is remembered per source: a retry within it is stored once. 0: off.",
    ),
    Setting(
        "rejections_max_rows",
        _positive_int,
        "10000",
        "Refused ingest requests kept for inspection and replay at most; the oldest go first.",
    ),
    Setting(
        "rejections_max_bytes",
        _positive_int,
        "268435456",
        "Bytes of refused requests kept at most (each row's stored size); the oldest go first.",
    ),
    Setting(
        "rejections_max_path_chars",
        _positive_int,
        "1024",
        "Most characters of a refused request's path and of its query string kept.",
    ),
    Setting(
        "rejections_max_age_seconds",
        _positive_int,
        "604800",
        "How long a refused request is kept (default 7 days).",
    ),
    Setting(
        "rejections_max_body_bytes",
        _non_negative_int,
        "65536",
        "Most bytes of a refused request's body kept (the original size is recorded, and a "
        "truncated body cannot be replayed); 0 keeps no bodies.",
    ),
    Setting(
        "rejections_buffer_size",
        _positive_int,
        "1000",
        "Refused requests waiting in memory to be written at most; beyond it (or beyond "
        "EVENTSTITCH_REJECTIONS_BUFFER_BYTES) they are dropped and counted.",
    ),
    Setting(
        "rejections_buffer_bytes",
        _positive_int,
        "8388608",
        "Bytes (bodies, headers, query strings) of refused requests waiting in memory at most.",
    ),
    Setting(
        "rejections_flush_ms",
        _positive_int,
        "250",
        "How long refused requests gather in memory before one write stores them together.",
    ),
    Setting(
        "source_cache_seconds",
        _non_negative_float,
        "1.0",
        "How long a process trusts its cached copy of a source before re-reading it. The writer "
        "re-checks every source inside the commit, so a disabled source never gets an event in.",
    ),
    Setting(
        "source_cache_max_entries",
        _positive_int,
        "10000",
        "Sources, unknown source ids and rate-limit buckets each held in memory at most; the "
        "least recently used go first.",
    ),
    Setting(
        "source_cache_max_bytes",
        _positive_int,
        "8388608",
        "Bytes the copies of sources, and the unknown source ids, each hold in memory at most.",
    ),
    Setting(
        "rate_limit_per_second",
        _rate_per_second,
        "0",
        "Requests per second each source may send to /collect or /track, unless the source has "
        "its own rate_limit; over it: 429 with Retry-After. 0: no limit; else 0.001 to 1000000. "
        "Each process keeps its "
        "own buckets, so with N workers a source may get up to N times this.",
    ),
    Setting(
        "rate_limit_burst",
        _rate_burst,
        "0",
        "Requests a source may send at once before the rate applies, at most 1000000. 0: the "
        "rate rounded up (at least 1).",
    ),
    Setting(
        "query_default_limit", _positive_int, "50", "Events per page when `limit` is not given."
    ),
    Setting("query_max_limit", _positive_int, "1000", "Largest `limit` accepted on `/api/events`."),
    Setting("sources_default_limit", _positive_int, "100", "Sources per page of /api/sources."),
    Setting("sources_max_limit", _positive_int, "500", "Largest `limit` accepted on /api/sources."),
    Setting(
        "query_timeout_ms",
        _positive_int,
        "10000",
        "Longest a single events or insights query may run before it is stopped (400).",
    ),
    Setting(
        "max_insight_buckets",
        _positive_int,
        "10000",
        "Most rows an insights answer may hold (time buckets or distinct values); on "
        "/api/insights, the most time intervals of a series (400 past it).",
    ),
    Setting(
        "max_insight_groups",
        _positive_int,
        "10000",
        "Most groups /api/insights gathers and returns; past it the answer says truncated.",
    ),
    Setting(
        "max_insight_values",
        _positive_int,
        "2000000",
        "Most values /api/insights holds in memory for one answer (numbers for sum, avg, "
        "percentiles; distinct values); past it the query is refused (400).",
    ),
    Setting(
        "columnar_memory_mb",
        _positive_int,
        "256",
        "Most memory, in MB, DuckDB may use for one Parquet export, segment write or columnar "
        "insights query (it spills to disk or fails past it; its own default is most of the "
        "machine's RAM).",
    ),
    Setting(
        "columnar_spill_mb",
        _positive_int,
        "4096",
        "Most disk, in MB, DuckDB may spill to past its memory cap, in the private folder "
        "<data_dir>/columnar-spill (its own default is 90 % of the free disk, in the working "
        "folder).",
    ),
    Setting(
        "columnar_cache_rows",
        _non_negative_int,
        "50000",
        "Most groups each process keeps from insight segments it has read (a count, sum, "
        "average, minimum or maximum per segment and question, least recently used out first), "
        "so asking again reads only newer segments and the hot tail; 0 keeps none.",
    ),
    Setting(
        "columnar_cache_values_mb",
        _non_negative_int,
        "64",
        "Most memory, in MB, each process keeps of what insight segments it has read gave a "
        "percentile (their numbers, 8 bytes each) or a distinct count (their distinct values, "
        "a table of the texts and 4 bytes an id), least recently used out first, so asking "
        "again reads only newer segments and the hot tail; 0 keeps none.",
    ),
    Setting(
        "columnar_tail_rows",
        _non_negative_int,
        "4000000",
        "Most rows of the hot tail (events after the last insight segment) each process keeps, "
        "over all questions, least recently used question out first, so asking again reads from "
        "the store only the events committed since. Kept as Parquet files in the segments "
        "folder, 1-5 bytes a row on disk measured, more for values that rarely repeat; 0 keeps "
        "none.",
    ),
    Setting(
        "columnar_max_paths",
        _positive_int,
        "256",
        "Most property paths one insight segment keeps as typed columns (the most frequent of "
        "its hour); a query on another path of that hour is answered by the scan.",
    ),
    Setting(
        "columnar_refresh_seconds",
        _non_negative_int,
        "10",
        "Seconds from the start of one round of `serve`'s segment refresher to the start of "
        "the next (the next starts at once after a longer round), which writes the insight "
        "segments of the events sealed since (one process per segments folder, elected by a "
        "file lock): the events past the segments, read from the store by each answer, are "
        "about 20 s plus this many seconds' worth. 0 turns the columnar read side off: no "
        "segments are written or read, and /api/insights answers from the rollup or a scan of "
        "the store.",
    ),
    Setting(
        "columnar_refresh_in",
        _choice("PROCESS", "THREAD"),
        "process",
        "Where a refresher round runs: `process`, a short-lived child process (keeps ingest "
        "fast, returns DuckDB's memory when done), or `thread`, a thread of the server (no "
        "extra process, but its Python work slows ingest; see docs/benchmarks.md).",
    ),
    Setting("log_level", _text, "info", "Log level of the server: debug, info, warning, error."),
    Setting(
        "identity_single_valued_kinds",
        _names,
        "user_id",
        "Identifier kinds a person has one value of (comma-separated). A profile never takes a "
        "second value of these, and two profiles holding different values are never merged.",
    ),
    Setting(
        "identity_shared_kinds",
        _names,
        "",
        "Identifier kinds that do not single out a person, such as a shared office phone "
        "(comma-separated). Rules of these kinds copy the value to a trait and never link.",
    ),
    Setting(
        "identity_junk_values",
        _names,
        "",
        "More values that identify nobody (comma-separated), besides the built-in list in "
        "docs/identity.md.",
    ),
    Setting(
        "phone_default_region",
        _region,
        "",
        "Region for phone numbers written without a country code (e.g. US); empty: such numbers "
        "do not identify.",
    ),
    Setting(
        "system_events",
        _flag,
        "true",
        "Record Eventstitch's own happenings (profiles created or merged, sources changed, "
        "backfills) as events of the read-only `system` source.",
    ),
)
