-- project_stats.csv, "before" columns: images and annotations per (site, source) in the pinned lake
-- (every row step 1 starts from; an image counts once however many drop reasons its rows have).
SELECT site, source_id, count(DISTINCT image_id) AS images_before, count(*) AS annotations_before
FROM annotations_stored
GROUP BY ALL
