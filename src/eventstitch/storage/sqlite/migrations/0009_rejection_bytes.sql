-- The quarantine is bounded in bytes as well as rows (EVENTSTITCH_REJECTIONS_MAX_BYTES): each
-- row records what it stores (shared/rejection_rows.py stored_size), so a write can delete the
-- oldest rows beyond the bound without reading them. Rows kept before get the same estimate.
ALTER TABLE rejections ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE rejections SET stored_bytes = 200 + length(route) + length(reason) + length(message)
    + length(errors) + coalesce(length(source_id), 0) + length(method) + length(path)
    + length(query) + length(headers) + coalesce(length(client), 0) + length(body)
    + coalesce(length(replayed_event_ids), 0);
