-- annotations: one row per point annotation of both sites, the raw facts as each source gave them.
-- Reads the stored Delta table (view `annotations_stored`) and derives two columns rather than storing
-- them: `feature_key` (relative to the source's root, so digests never depend on where the lake lives)
-- and, for CoralNet, `annotation_id` (stable: source, image, row, col and occurrence among duplicates).
SELECT
    site,
    source_id,
    image_id,
    "row",
    col,
    CAST(label_id AS VARCHAR) AS label_id,
    benthic_attribute_id,
    growth_form_id,
    CASE
        WHEN site = 'mermaid' THEN image_id || '_featurevector'
        ELSE 's' || source_id || '/features/i' || image_id || '.featurevector'
    END AS feature_key,
    coalesce(
        annotation_id,
        'cn-s' || source_id || '-i' || image_id || '-r' || "row" || '-c' || col || '-' || occurrence
    ) AS annotation_id,
    occurrence,
    updated_on,
    ingested_at
FROM annotations_stored
