-- The first offending row of each kind in the MERMAID export (view `mermaid_raw`), or NULL; the same
-- rules as mermaid_check.sql (macros of mermaid_macros.sql). Each result is a struct (r := 0-based row
-- in its file, f := file, v := the value as text).
SELECT
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(id AS VARCHAR)), file_row_number)
        FILTER (WHERE NOT is_uuid_text(CAST(id AS VARCHAR))) AS id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(image_id AS VARCHAR)), file_row_number)
        FILTER (WHERE NOT is_image_id(image_id)) AS image_id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST("row" AS VARCHAR)), file_row_number)
        FILTER (WHERE NOT is_pixel("row")) AS "row",
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(col AS VARCHAR)), file_row_number)
        FILTER (WHERE NOT is_pixel(col)) AS col,
    arg_min(struct_pack(r := file_row_number, f := filename, v := CAST(benthic_attribute_id AS VARCHAR)),
            file_row_number)
        FILTER (WHERE NOT is_uuid_text(CAST(benthic_attribute_id AS VARCHAR))) AS benthic_attribute_id,
    arg_min(struct_pack(r := file_row_number, f := filename, v := gf_text(growth_form_id)), file_row_number)
        FILTER (WHERE NOT is_growth_form(growth_form_id)) AS growth_form_id
FROM mermaid_raw
