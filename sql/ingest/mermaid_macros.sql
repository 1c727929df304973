-- Macros shared by the MERMAID ingest queries (view `mermaid_raw`): the one definition of each rule,
-- used by the check (mermaid_check.sql), the error report (mermaid_validate.sql) and the rows written
-- (mermaid_annotations.sql). The checks are never NULL.

-- A UUID written the usual way (8-4-4-4-12 hex digits, any case). The pattern is a literal in the
-- macro body, so it is compiled once per query, not once per row.
CREATE OR REPLACE TEMP MACRO is_uuid_text(t) AS (
    coalesce(regexp_full_match(t, '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'), false)
);

-- An image id: present, and not empty or all spaces (a regex search stops at the first other character,
-- which is cheaper than trimming every id).
CREATE OR REPLACE TEMP MACRO is_image_id(v) AS (
    coalesce(regexp_matches(CAST(v AS VARCHAR), '[^ ]'), false)
);

-- A row/col value that is an integer 0..65535, whatever numeric or text type the export used.
CREATE OR REPLACE TEMP MACRO is_pixel(v) AS (
    coalesce(TRY_CAST(v AS DOUBLE) BETWEEN 0 AND 65535 AND TRY_CAST(v AS DOUBLE) = floor(TRY_CAST(v AS DOUBLE)), false)
);

-- The growth form as text, and whether it means "no growth form" (NULL, '', 'None', 'null').
CREATE OR REPLACE TEMP MACRO gf_text(v) AS (trim(CAST(v AS VARCHAR)));
CREATE OR REPLACE TEMP MACRO no_growth_form(t) AS (
    t IS NULL OR t IN ('', 'None', 'none', 'null', 'NULL')
);
CREATE OR REPLACE TEMP MACRO is_growth_form(v) AS (
    no_growth_form(gf_text(v)) OR is_uuid_text(gf_text(v))
);

-- 64-bit hash of a point (image, row, col): equal points hash equally, whatever the column types.
CREATE OR REPLACE TEMP MACRO mermaid_point_hash(image_id, "row", col) AS (
    hash(CAST(image_id AS VARCHAR), TRY_CAST("row" AS DOUBLE), TRY_CAST(col AS DOUBLE))
);
