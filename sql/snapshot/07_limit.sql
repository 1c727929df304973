-- Step 7, deterministic limit: per site, the rows whose md5(annotation_id) sorts first (ties broken by
-- annotation_id, so the order is total). Quotas $mermaid_quota / $coralnet_quota are computed by the
-- caller: half each when both sites are present (MERMAID gets the odd one), the other site filling any
-- shortfall. When the limit does not bind, the caller uses 07_no_limit.sql instead (no sort needed).
SELECT *
FROM step_features
WHERE drop_reason IS NULL
QUALIFY row_number() OVER (PARTITION BY site ORDER BY md5(annotation_id), annotation_id)
    <= CASE site WHEN 'mermaid' THEN $mermaid_quota ELSE $coralnet_quota END
