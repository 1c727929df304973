-- Per-stage accounting in one pass: rows, images and annotations per (site, source, drop reason).
SELECT site, source_id, drop_reason, count(*) AS annotations, count(DISTINCT image_id) AS images
FROM step_features
GROUP BY ALL
