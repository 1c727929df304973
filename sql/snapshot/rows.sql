-- The snapshot rows: the limited rows with taxonomy names, in a total order (occurrence numbers the
-- annotations of one point, so (site, source, image, row, col, occurrence) is unique). The derived
-- keys (views/macros.sql) are built after the sort, for the written rows only: as sort payload the
-- two strings per row would cost more than the sort itself. A projection keeps the sorted order.
SELECT
    site,
    source_id,
    image_id,
    "row",
    col,
    label_id,
    benthic_attribute_id,
    benthic_attribute_name,
    growth_form_id,
    growth_form_name,
    feature_key_of(site, source_id, image_id) AS feature_key,
    annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence) AS annotation_id,
    occurrence,
    updated_on
FROM (
    SELECT l.*, b.name AS benthic_attribute_name, coalesce(g.name, '') AS growth_form_name
    FROM step_limit AS l
    LEFT JOIN benthic_attributes AS b ON b.id = l.benthic_attribute_id
    LEFT JOIN growth_forms AS g ON g.id = l.growth_form_id
    ORDER BY l.site, l.source_id, l.image_id, l."row", l.col, l.occurrence
)
