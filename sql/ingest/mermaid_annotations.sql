-- MERMAID rows in the stored `annotations` shape (view `mermaid_raw` has canonical column names).
-- A missing growth form (NULL, '', 'None') becomes ''. `occurrence` numbers identical points of one
-- image (same row, col) in a stable order, so duplicate points stay distinct and countable.
SELECT
    'mermaid' AS site,
    'mermaid' AS source_id,
    CAST(image_id AS VARCHAR) AS image_id,
    CAST("row" AS INTEGER) AS "row",
    CAST(col AS INTEGER) AS col,
    NULL::BIGINT AS label_id,
    lower(CAST(benthic_attribute_id AS VARCHAR)) AS benthic_attribute_id,
    CASE
        WHEN trim(CAST(growth_form_id AS VARCHAR)) IS NULL
            OR trim(CAST(growth_form_id AS VARCHAR)) IN ('', 'None', 'none', 'null', 'NULL') THEN ''
        ELSE lower(trim(CAST(growth_form_id AS VARCHAR)))
    END AS growth_form_id,
    lower(CAST(id AS VARCHAR)) AS annotation_id,
    CAST(row_number() OVER (
        PARTITION BY image_id, "row", col ORDER BY lower(CAST(id AS VARCHAR))
    ) AS INTEGER) AS occurrence,
    CAST(updated_on AS TIMESTAMPTZ) AS updated_on,
    CAST($ingested_at AS TIMESTAMPTZ) AS ingested_at
FROM mermaid_raw
