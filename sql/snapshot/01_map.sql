-- Step 1, map: every annotation with its MERMAID BA/GF (CoralNet labels through label_mapping_resolved).
-- CoralNet rows whose label id has no mapping are marked 'unmapped_label'. `drop_reason` keeps the
-- first step that drops a row; later steps only ever fill it when it is still NULL.
SELECT
    a.site,
    a.source_id,
    a.image_id,
    a."row",
    a.col,
    a.label_id,
    coalesce(a.benthic_attribute_id, m.benthic_attribute_id) AS benthic_attribute_id,
    coalesce(a.growth_form_id, m.growth_form_id) AS growth_form_id,
    a.feature_key,
    a.annotation_id,
    a.occurrence,
    CASE WHEN a.site = 'coralnet' AND m.label_id IS NULL THEN 'unmapped_label' END AS drop_reason
FROM annotations AS a
LEFT JOIN label_mapping_resolved AS m ON a.label_id = m.label_id
