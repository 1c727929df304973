-- Step 7, deterministic limit: per site, the rows whose md5(annotation_id) sorts first (ties broken by
-- annotation_id, so the order is total). Quotas $mermaid_quota / $coralnet_quota are computed by the
-- caller: half each when both sites are present (MERMAID gets the odd one), the other site filling any
-- shortfall. When the limit does not bind, the caller uses 07_no_limit.sql instead (no sort needed).
-- The derived keys (views/macros.sql) are built here, for the rows that survived steps 1-6 only.
SELECT *
FROM (
    SELECT
        * EXCLUDE (stored_annotation_id),
        annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence) AS annotation_id,
        feature_key_of(site, source_id, image_id) AS feature_key
    FROM step_features
    WHERE drop_reason IS NULL
)
QUALIFY row_number() OVER (PARTITION BY site ORDER BY md5(annotation_id), annotation_id)
    <= CASE site WHEN 'mermaid' THEN $mermaid_quota ELSE $coralnet_quota END
