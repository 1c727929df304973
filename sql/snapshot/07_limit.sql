-- Step 7, deterministic limit: per site, the rows whose md5(annotation_id) sorts first (ties broken by
-- annotation_id, so the order is total). Quotas $mermaid_quota / $coralnet_quota are computed by the
-- caller: half each when both sites are present (MERMAID gets the odd one), the other site filling any
-- shortfall. Without a limit the quotas are the row counts.
(
    SELECT * FROM step_features WHERE drop_reason IS NULL AND site = 'mermaid'
    ORDER BY md5(annotation_id), annotation_id
    LIMIT $mermaid_quota
)
UNION ALL
(
    SELECT * FROM step_features WHERE drop_reason IS NULL AND site = 'coralnet'
    ORDER BY md5(annotation_id), annotation_id
    LIMIT $coralnet_quota
)
