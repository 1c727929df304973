-- Step 6, features: annotations whose image has no feature object in the `features` table are
-- marked 'missing_features' (the caller aborts if more than the allowed percentage are).
SELECT
    s.* REPLACE (
        coalesce(s.drop_reason, CASE WHEN f.image_id IS NULL THEN 'missing_features' END) AS drop_reason
    )
FROM step_labels AS s
LEFT JOIN (SELECT DISTINCT site, source_id, image_id FROM features) AS f
    ON f.site = s.site AND f.source_id = s.source_id AND f.image_id = s.image_id
