-- Accounting for steps 1-5, which decide per label group: annotations per (site, source, drop reason),
-- with the label id kept for groups dropped as unmapped (for unmapped_labels.csv). Rows with a NULL
-- reason are the annotations that reach step 6.
SELECT
    site,
    source_id,
    drop_reason,
    CASE WHEN drop_reason = 'unmapped_label' THEN label_id END AS unmapped_label_id,
    CAST(sum(annotations) AS BIGINT) AS annotations
FROM step_labels
GROUP BY ALL
