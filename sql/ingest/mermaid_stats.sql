-- Figures for the MERMAID row of the `sources` table (view `mermaid_raw`; no re-read of the lake).
SELECT
    'mermaid' AS source_id,
    count(*) AS row_count,
    count(DISTINCT CAST(image_id AS VARCHAR)) AS image_count,
    (SELECT count(*) FILTER (WHERE occurrence > 1) FROM occurrence_mermaid) AS duplicate_points
FROM mermaid_raw
