-- Unmapped CoralNet label ids per source (rows dropped at step 1).
SELECT source_id, label_id, count(*) AS annotations
FROM step_features
WHERE drop_reason = 'unmapped_label'
GROUP BY source_id, label_id
ORDER BY annotations DESC, CAST(source_id AS BIGINT), CAST(label_id AS BIGINT)
