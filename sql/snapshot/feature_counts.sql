-- Accounting for step 6, which decides per annotation: annotations per (site, source, drop reason)
-- among those that reach it (NULL reason: kept). Run before writing when the limit's quotas need the
-- kept counts (and for --dry-run); otherwise the caller derives it from the written rows.
SELECT site, source_id, drop_reason, count(*) AS annotations
FROM step_features
GROUP BY ALL
