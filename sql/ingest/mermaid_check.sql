-- How many rows of the MERMAID export (view `mermaid_raw`) have a bad value; 0 for a good export.
-- If any, ingest runs mermaid_validate.sql (error path only) to name the file, row and column.
SELECT count(*) FILTER (WHERE NOT coalesce(
    regexp_matches(CAST(image_id AS VARCHAR), '[^ ]')  -- not empty or all spaces (cheaper than trim)
    AND is_pixel("row")
    AND is_pixel(col)
    AND is_uuid_text(CAST(id AS VARCHAR))
    AND is_uuid_text(CAST(benthic_attribute_id AS VARCHAR))
    AND (trim(CAST(growth_form_id AS VARCHAR)) IS NULL
         OR trim(CAST(growth_form_id AS VARCHAR)) IN ('', 'None', 'none', 'null', 'NULL')
         OR is_uuid_text(trim(CAST(growth_form_id AS VARCHAR)))),
    false)) AS bad_rows
FROM mermaid_raw
