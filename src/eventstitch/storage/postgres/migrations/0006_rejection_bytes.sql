-- The quarantine is bounded in bytes as well as rows; the same change as SQLite's 0009.
ALTER TABLE rejections ADD COLUMN stored_bytes bigint NOT NULL DEFAULT 0;
UPDATE rejections SET stored_bytes = 200 + octet_length(route) + octet_length(reason)
    + octet_length(message) + octet_length(errors) + coalesce(octet_length(source_id), 0)
    + octet_length(method) + octet_length(path) + octet_length(query) + octet_length(headers)
    + coalesce(octet_length(client), 0) + octet_length(body)
    + coalesce(octet_length(replayed_event_ids), 0);
