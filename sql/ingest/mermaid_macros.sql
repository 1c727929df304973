-- Macros shared by the MERMAID ingest queries (view `mermaid_raw`).

-- A UUID written the usual way (8-4-4-4-12 hex digits, any case). The pattern is a literal in the
-- macro body, so it is compiled once per query, not once per row.
CREATE OR REPLACE TEMP MACRO is_uuid_text(t) AS (
    regexp_full_match(t, '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')
);

-- A row/col value that is an integer 0..65535, whatever numeric or text type the export used.
CREATE OR REPLACE TEMP MACRO is_pixel(v) AS (
    TRY_CAST(v AS DOUBLE) BETWEEN 0 AND 65535 AND TRY_CAST(v AS DOUBLE) = floor(TRY_CAST(v AS DOUBLE))
);

-- 64-bit hash of a point (image, row, col): equal points hash equally, whatever the column types.
CREATE OR REPLACE TEMP MACRO mermaid_point_hash(image_id, "row", col) AS (
    hash(CAST(image_id AS VARCHAR), TRY_CAST("row" AS DOUBLE), TRY_CAST(col AS DOUBLE))
);
