-- Step 7, deterministic limit: per site, the rows whose md5(annotation_id) sorts first (ties broken by
-- annotation_id, so the order is total). Quotas $mermaid_quota / $coralnet_quota are computed by the
-- caller: half each when both sites are present (MERMAID gets the odd one), the other site filling any
-- shortfall. When the limit does not bind, the caller uses 07_no_limit.sql instead (no sort needed).
-- annotation_id is the derived key of views/macros.sql (the `annotations` view's), built here only
-- to rank; rows.sql builds the output keys after its sort.
SELECT * EXCLUDE (drop_reason)
FROM step_features
WHERE drop_reason IS NULL
QUALIFY row_number() OVER (
    PARTITION BY site
    ORDER BY
        md5(annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence)),
        annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence)
) <= CASE site WHEN 'mermaid' THEN $mermaid_quota ELSE $coralnet_quota END
