-- Per-source figures for the `sources` table, from the rows about to be written (table
-- `coralnet_rows`: source_key, image_id, occurrence); no re-read of the lake.
SELECT
    CAST(source_key AS VARCHAR) AS source_id,
    count(*) AS row_count,
    count(DISTINCT image_id) AS image_count,
    count(*) FILTER (WHERE occurrence > 1) AS duplicate_points
FROM coralnet_rows
GROUP BY source_key
