-- CoralNet rows of the files the fast Arrow reader did not take (view `coralnet_raw`: every value read
-- as text and parsed strictly, see coralnet_macros.sql), sorted by source so rows come grouped.
SELECT CAST(source_id AS UBIGINT) AS source_key, image_id, "row", col, label_id
FROM coralnet_raw
ORDER BY source_key
