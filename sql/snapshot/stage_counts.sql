-- Per-stage accounting: annotations per (site, source, drop reason), with the label id kept for rows
-- dropped as unmapped (for unmapped_labels.csv). Steps 1-5 drop whole label groups (counted by their
-- `annotations`); step 6 decides per annotation (kept rows have reason NULL).
SELECT
    site,
    source_id,
    drop_reason,
    CASE WHEN drop_reason = 'unmapped_label' THEN label_id END AS unmapped_label_id,
    CAST(sum(annotations) AS BIGINT) AS annotations
FROM step_labels
WHERE drop_reason IS NOT NULL
GROUP BY ALL
UNION ALL
SELECT site, source_id, drop_reason, NULL AS unmapped_label_id, count(*) AS annotations
FROM step_features
GROUP BY ALL
