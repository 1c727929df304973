-- The first offending row of each kind in the MERMAID export (view `mermaid_raw`), or NULL.
-- Each result is a struct (r := 0-based row in its file, f := file, v := the value as text).
-- The UUID pattern is a literal in each call: a pattern read from a column is compiled once per row.
WITH typed AS (
    SELECT
        *,
        trim(CAST(growth_form_id AS VARCHAR)) AS gf_text
    FROM mermaid_raw
)
SELECT
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(id AS VARCHAR)), file_row_number)
        FILTER (WHERE id IS NULL OR NOT regexp_matches(CAST(id AS VARCHAR), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')) AS id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(image_id AS VARCHAR)), file_row_number)
        FILTER (WHERE image_id IS NULL OR trim(CAST(image_id AS VARCHAR)) = '') AS image_id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST("row" AS VARCHAR)), file_row_number)
        FILTER (WHERE TRY_CAST("row" AS DOUBLE) IS NULL
                   OR TRY_CAST("row" AS DOUBLE) NOT BETWEEN 0 AND 65535
                   OR TRY_CAST("row" AS DOUBLE) <> floor(TRY_CAST("row" AS DOUBLE))) AS "row",
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(col AS VARCHAR)), file_row_number)
        FILTER (WHERE TRY_CAST(col AS DOUBLE) IS NULL
                   OR TRY_CAST(col AS DOUBLE) NOT BETWEEN 0 AND 65535
                   OR TRY_CAST(col AS DOUBLE) <> floor(TRY_CAST(col AS DOUBLE))) AS col,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(benthic_attribute_id AS VARCHAR)),
            file_row_number)
        FILTER (WHERE benthic_attribute_id IS NULL
                   OR NOT regexp_matches(CAST(benthic_attribute_id AS VARCHAR), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')) AS benthic_attribute_id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := gf_text), file_row_number)
        FILTER (WHERE NOT (gf_text IS NULL OR gf_text IN ('', 'None', 'none', 'null', 'NULL')
                           OR regexp_matches(gf_text, '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'))) AS growth_form_id
FROM typed
