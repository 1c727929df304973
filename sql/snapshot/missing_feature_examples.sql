-- Examples of annotations whose feature object is missing (for the abort message).
SELECT DISTINCT site, source_id, image_id, feature_key
FROM step_features
WHERE drop_reason = 'missing_features'
ORDER BY site, source_id, image_id
LIMIT 10
