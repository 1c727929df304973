-- Occurrence numbers for the CoralNet rows that may be duplicate points (table
-- `occurrence_candidates`: the rows whose point hash repeats, found by ingest.py with one sort).
-- Duplicates (same source, image, row, col) are numbered by label id, so their derived ids are stable;
-- every other row has occurrence 1. A hash collision only adds a candidate: the window partitions by
-- the real point, so the numbers stay exact.
SELECT
    row_index,
    CAST(row_number() OVER (PARTITION BY source_key, image_id, "row", col ORDER BY label_id) AS INTEGER) AS occurrence
FROM occurrence_candidates
