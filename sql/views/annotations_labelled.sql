-- annotations_labelled: every annotation with its MERMAID BA/GF filled where known and a `mapped`
-- flag. MERMAID rows keep their own ids; CoralNet rows take them from `label_mapping_resolved`.
-- `annotations_mapped` (mapped rows only) and snapshot step 1 (which counts the unmapped) read it.
SELECT
    a.* REPLACE (
        coalesce(a.benthic_attribute_id, m.benthic_attribute_id) AS benthic_attribute_id,
        coalesce(a.growth_form_id, m.growth_form_id) AS growth_form_id
    ),
    (a.site = 'mermaid' OR m.label_id IS NOT NULL) AS mapped
FROM annotations AS a
LEFT JOIN label_mapping_resolved AS m ON a.label_id = m.label_id
