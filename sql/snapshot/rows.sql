-- The snapshot rows: the limited rows with taxonomy names, in a total order (occurrence numbers the
-- annotations of one point, so (site, source, image, row, col, occurrence) is unique).
SELECT
    l.site,
    l.source_id,
    l.image_id,
    l."row",
    l.col,
    l.label_id,
    l.benthic_attribute_id,
    b.name AS benthic_attribute_name,
    l.growth_form_id,
    coalesce(g.name, '') AS growth_form_name,
    l.feature_key,
    l.annotation_id,
    l.occurrence
FROM step_limit AS l
LEFT JOIN benthic_attributes AS b ON b.id = l.benthic_attribute_id
LEFT JOIN growth_forms AS g ON g.id = l.growth_form_id
ORDER BY l.site, l.source_id, l.image_id, l."row", l.col, l.occurrence
