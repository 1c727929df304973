-- Occurrence numbers for the MERMAID rows that may be duplicate points (same image, row, col): those
-- whose point hash repeats (table `repeated_hashes`, filled by ingest.py). Duplicates are numbered by
-- annotation id; every other row has occurrence 1. A hash collision only adds a candidate: the window
-- partitions by the real point, so the numbers stay exact. Rows are identified by file and row number.
CREATE OR REPLACE TABLE occurrence_mermaid AS
SELECT
    filename,
    file_row_number,
    row_number() OVER (PARTITION BY CAST(image_id AS VARCHAR), "row", col ORDER BY lower(CAST(id AS VARCHAR))) AS occurrence
FROM mermaid_raw
WHERE mermaid_point_hash(image_id, "row", col) IN (SELECT point_hash FROM repeated_hashes)
