-- annotations: one row per point annotation of both sites, the raw facts as each source gave them.
-- Reads the stored Delta table (view `annotations_stored`) and derives two columns rather than storing
-- them (macros in views/macros.sql): `feature_key` (relative to the source's root, so digests never
-- depend on where the lake lives) and, for CoralNet, `annotation_id` (stable: source, image, row, col
-- and occurrence among duplicates).
SELECT
    site,
    source_id,
    image_id,
    "row",
    col,
    CAST(label_id AS VARCHAR) AS label_id,
    benthic_attribute_id,
    growth_form_id,
    feature_key_of(site, source_id, image_id) AS feature_key,
    annotation_id_of(annotation_id, source_id, image_id, "row", col, occurrence) AS annotation_id,
    occurrence,
    updated_on,
    ingested_at
FROM annotations_stored
