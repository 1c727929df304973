-- The CoralNet sources of `spec sources`: every source of the pinned `annotations` table with at least
-- $min_images distinct images, with its images and annotations (every stored annotation, mapped or
-- not). Columns as `snapshot create --coralnet-sources` reads them (`id`; the counts are for people).
-- Largest first; ties by the numeric id (unique): a total order.
SELECT
    source_id AS id,
    count(DISTINCT image_id) AS images,
    count(*) AS annotations
FROM annotations_stored
WHERE site = 'coralnet'
GROUP BY source_id
HAVING count(DISTINCT image_id) >= $min_images
ORDER BY images DESC, CAST(source_id AS BIGINT)
