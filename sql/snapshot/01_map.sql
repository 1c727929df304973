-- Step 1, map: every annotation of the pinned lake with its MERMAID BA/GF: MERMAID rows keep their
-- own, CoralNet rows take them from `label_mapping_resolved` (as the view `annotations_labelled` does);
-- CoralNet rows whose label id has no mapping are marked 'unmapped_label'. `drop_reason` keeps the
-- first step that drops a row; later steps only ever fill it when it is still NULL. The derived
-- `feature_key` and CoralNet `annotation_id` are built in step 7, for the kept rows only.
SELECT
    a.site,
    a.source_id,
    a.image_id,
    a."row",
    a.col,
    CAST(a.label_id AS VARCHAR) AS label_id,
    coalesce(a.benthic_attribute_id, m.benthic_attribute_id) AS benthic_attribute_id,
    coalesce(a.growth_form_id, m.growth_form_id) AS growth_form_id,
    a.annotation_id AS stored_annotation_id,
    a.occurrence,
    CASE WHEN NOT (a.site = 'mermaid' OR m.label_id IS NOT NULL) THEN 'unmapped_label' END AS drop_reason
FROM annotations_stored AS a
LEFT JOIN label_mapping_resolved AS m ON CAST(a.label_id AS VARCHAR) = m.label_id
