-- How many rows of the MERMAID export (view `mermaid_raw`) have a bad value; 0 for a good export.
-- If any, ingest runs mermaid_validate.sql (error path only) to name the file, row and column.
-- The rules are the macros of mermaid_macros.sql.
SELECT count(*) FILTER (WHERE NOT (
    is_image_id(image_id)
    AND is_pixel("row")
    AND is_pixel(col)
    AND is_uuid_text(CAST(id AS VARCHAR))
    AND is_uuid_text(CAST(benthic_attribute_id AS VARCHAR))
    AND is_growth_form(growth_form_id)
)) AS bad_rows
FROM mermaid_raw
