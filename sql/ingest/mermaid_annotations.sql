-- MERMAID rows in the stored `annotations` shape (view `mermaid_raw`, checked by mermaid_check.sql),
-- with the occurrence numbers of duplicate points (mermaid_occurrence.sql; 1 for every other row).
-- A missing growth form (NULL, '', 'None'; macros of mermaid_macros.sql) becomes ''; ids are stored
-- lower-case. The partition columns (site 'mermaid', source_id 'mermaid') are not here: they are in
-- the files' path.
SELECT
    CAST(r.image_id AS VARCHAR) AS image_id,
    CAST(r."row" AS INTEGER) AS "row",
    CAST(r.col AS INTEGER) AS col,
    NULL::BIGINT AS label_id,
    lower(CAST(r.benthic_attribute_id AS VARCHAR)) AS benthic_attribute_id,
    CASE
        WHEN no_growth_form(gf_text(r.growth_form_id)) THEN ''
        ELSE lower(gf_text(r.growth_form_id))
    END AS growth_form_id,
    lower(CAST(r.id AS VARCHAR)) AS annotation_id,
    CAST(coalesce(o.occurrence, 1) AS INTEGER) AS occurrence,
    CAST(r.updated_on AS TIMESTAMPTZ) AS updated_on,
    CAST($ingested_at AS TIMESTAMPTZ) AS ingested_at
FROM mermaid_raw AS r
LEFT JOIN occurrence_mermaid AS o USING (filename, file_row_number)
