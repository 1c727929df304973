-- Step 6, features, the first step per annotation: the annotations of the label groups that steps 1-5
-- kept, with their shaped BA/GF; those whose image has no feature object in the `features` table are
-- marked 'missing_features' (the caller aborts if more than the allowed percentage are). Annotations
-- of dropped groups never reach this step: they are counted on the groups.
SELECT
    a.site,
    a.source_id,
    a.image_id,
    a."row",
    a.col,
    g.label_id,
    g.benthic_attribute_id,
    g.growth_form_id,
    a.annotation_id AS stored_annotation_id,
    a.occurrence,
    a.updated_on,
    CASE WHEN f.image_id IS NULL THEN 'missing_features' END AS drop_reason
FROM annotations_stored AS a
JOIN (SELECT * FROM step_labels WHERE drop_reason IS NULL) AS g
    ON g.site = a.site
    AND g.source_id = a.source_id
    AND g.stored_label_id IS NOT DISTINCT FROM a.label_id
    AND g.stored_benthic_attribute_id IS NOT DISTINCT FROM a.benthic_attribute_id
    AND g.stored_growth_form_id IS NOT DISTINCT FROM a.growth_form_id
LEFT JOIN (SELECT DISTINCT site, source_id, image_id FROM features) AS f
    ON f.site = a.site AND f.source_id = a.source_id AND f.image_id = a.image_id
