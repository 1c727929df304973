-- Step 1, map: every label group of the pinned lake (label_groups.sql: one row per distinct site,
-- source, label id, BA and GF, with its number of annotations) with its MERMAID BA/GF: MERMAID groups
-- keep their own, CoralNet groups take them from `label_mapping_resolved` (as the view
-- `annotations_labelled` does); CoralNet label ids without a mapping are marked 'unmapped_label'.
-- `drop_reason` keeps the first step that drops a group; later steps only fill it when it is still NULL.
SELECT
    g.site,
    g.source_id,
    g.stored_label_id,
    g.stored_benthic_attribute_id,
    g.stored_growth_form_id,
    CAST(g.stored_label_id AS VARCHAR) AS label_id,
    coalesce(g.stored_benthic_attribute_id, m.benthic_attribute_id) AS benthic_attribute_id,
    coalesce(g.stored_growth_form_id, m.growth_form_id) AS growth_form_id,
    g.annotations,
    CASE WHEN NOT (g.site = 'mermaid' OR m.label_id IS NOT NULL) THEN 'unmapped_label' END AS drop_reason
FROM label_groups AS g
LEFT JOIN label_mapping_resolved AS m ON CAST(g.stored_label_id AS VARCHAR) = m.label_id
