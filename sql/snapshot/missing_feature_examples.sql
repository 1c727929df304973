-- Examples of annotations whose feature object is missing (for the abort message).
SELECT DISTINCT site, source_id, image_id, feature_key_of(site, source_id, image_id) AS feature_key
FROM step_features
WHERE drop_reason = 'missing_features'
ORDER BY site, source_id, image_id
LIMIT 10
