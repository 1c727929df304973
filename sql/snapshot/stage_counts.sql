-- Per-stage accounting in one pass: annotations and images per (site, source, drop reason), with the
-- label id kept for rows dropped as unmapped (for unmapped_labels.csv).
SELECT
    site,
    source_id,
    drop_reason,
    CASE WHEN drop_reason = 'unmapped_label' THEN label_id END AS unmapped_label_id,
    count(*) AS annotations,
    count(DISTINCT image_id) AS images
FROM step_features
GROUP BY ALL
