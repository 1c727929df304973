-- annotations_mapped: every annotation with a MERMAID benthic attribute and growth form ('' = none).
-- MERMAID rows keep their own ids; CoralNet rows take them from `label_mapping_resolved`, so a new
-- mapping never needs a re-ingest. CoralNet rows whose label id has no mapping are left out (see
-- `unmapped_annotations`).
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
    a.updated_on,
    a.ingested_at
FROM annotations AS a
LEFT JOIN label_mapping_resolved AS m ON a.label_id = m.label_id
WHERE a.site = 'mermaid' OR m.label_id IS NOT NULL
