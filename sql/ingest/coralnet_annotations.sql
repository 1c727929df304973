-- CoralNet rows in the stored `annotations` shape (view `coralnet_raw`: image_id, row, col, label_id,
-- source_id, already typed and range-checked by the CSV reader). BA/GF stay NULL: CoralNet labels are
-- mapped in the `annotations_mapped` view, so a new mapping never needs a re-ingest. `occurrence`
-- numbers duplicate points (same image, row, col) by label id, so their derived ids are stable.
SELECT
    'coralnet' AS site,
    source_id,
    CAST(image_id AS VARCHAR) AS image_id,
    CAST("row" AS INTEGER) AS "row",
    CAST(col AS INTEGER) AS col,
    CAST(label_id AS BIGINT) AS label_id,
    NULL::VARCHAR AS benthic_attribute_id,
    NULL::VARCHAR AS growth_form_id,
    NULL::VARCHAR AS annotation_id,
    CAST(row_number() OVER (
        PARTITION BY source_id, image_id, "row", col ORDER BY label_id
    ) AS INTEGER) AS occurrence,
    NULL::TIMESTAMPTZ AS updated_on,
    CAST($ingested_at AS TIMESTAMPTZ) AS ingested_at
FROM coralnet_raw
