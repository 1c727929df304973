-- Step 7 when no annotation limit binds: every row that survived steps 1-6, with the derived keys
-- (views/macros.sql) built for them only.
SELECT
    * EXCLUDE (stored_annotation_id),
    annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence) AS annotation_id,
    feature_key_of(site, source_id, image_id) AS feature_key
FROM step_features
WHERE drop_reason IS NULL
